"""Rollback on model quality end to end on the real control plane, fed by the real serving code.

Each version's pod is stood in for by the image's own command under gunicorn on a loopback
address, with the env of the Deployment the operator made plus the feedback key read from the
Secret the operator created (as the kubelet would inject it). A client predicts through
whichever revision the Service selects, takes the signed feedback tokens from the response and
posts the true labels back: the counters the operator judges are the serving code's own.

Scenarios: a classifier v2 that predicts the wrong class while answering every request with 200
is rolled back to v1 on `minAccuracy` (by scraping the pods, and through a real Prometheus where
the pods are reported at an address nothing listens on, so only PromQL can see the counters); a
regressor v2 is rolled back on `maxRmse`; a bad classifier with fewer scored rows per window
than `minScoredRows` is never rolled back and its breach count stays 0.
"""

from __future__ import annotations

import base64
import random
import time
from pathlib import Path

import pytest
import requests
from sklearn.datasets import load_diabetes, load_iris
from sklearn.linear_model import LinearRegression, LogisticRegression

from modelops import contract
from modelops.operator.builders import feedback_secret_name
from modelops.operator.quality import REASON_ACCURACY, REASON_RMSE
from tests.cluster.support import (Cluster, OperatorProcess, PrometheusProcess, ServiceClient,
                                   ServingProcess, deployment_env, dump_artifacts, wait_for)

FAST = {"interval": "1s", "window": "3s", "consecutiveBreaches": 2, "minRequests": 5,
        "errorRateThreshold": 0.05}
DEAD_SUBNET = "127.77.9"  # pods reported here in the Prometheus case: nothing listens


def _datasets():
    return {"classifier": load_iris(return_X_y=True), "regressor": load_diabetes(return_X_y=True)}


def _artifacts(directory: Path, kind: str) -> dict[str, tuple[str, str]]:
    """v1 good; v2 as confident but wrong: a classifier trained on shifted labels (predicts
    class y+1), a regressor trained on shuffled targets (RMSE far above v1's ~54)."""
    X, y = _datasets()[kind]
    if kind == "classifier":
        models = {"1": LogisticRegression(max_iter=500).fit(X, y),
                  "2": LogisticRegression(max_iter=500).fit(X, (y + 1) % 3)}
    else:
        models = {"1": LinearRegression().fit(X, y),
                  "2": LinearRegression().fit(X, -y + 2 * y.mean())}
    return dump_artifacts(directory, models, prefix=kind)


class Feedback(ServiceClient):
    """Predicts through the revision the Service selects and posts the truth for every row,
    with the tokens from the response: `rows` rows per request, `per_second` requests a second."""

    def __init__(self, s: "Scenario", *, rows: int, per_second: float):
        super().__init__(s.cluster, s.namespace, s.name, s.ips, period=1.0 / per_second,
                         max_seconds=300)
        self.s, self.rows = s, rows
        self.X, self.y = _datasets()[s.kind]
        self.scored: dict[str, int] = {}  # revision -> rows scored (answered 200)
        self.refused: dict[tuple[str, int], int] = {}
        self.first_scored_at: dict[str, float] = {}
        self.rng = random.Random(11)

    def unreachable(self, revision: str) -> None:
        self.refused[(revision, 0)] = self.refused.get((revision, 0), 0) + 1

    def send(self, session: requests.Session, revision: str, base: str) -> None:
        self._one(session, revision, base)

    def _one(self, session: requests.Session, revision: str, base: str) -> None:
        picks = [self.rng.randrange(len(self.y)) for _ in range(self.rows)]
        body = {"instances": [self.X[i].tolist() for i in picks]}
        answer = session.post(f"{base}/v1/models/{self.s.name}:predict", json=body, timeout=5)
        answer.raise_for_status()
        tokens = answer.json()["feedback_tokens"]
        truth = [int(self.y[i]) if self.s.kind == "classifier" else float(self.y[i])
                 for i in picks]
        scored = session.post(f"{base}/v2/models/{self.s.name}/feedback", timeout=5, json={
            "feedback": [{"token": t, "truth": v} for t, v in zip(tokens, truth)]})
        if scored.status_code != 200:
            key = (revision, scored.status_code)
            self.refused[key] = self.refused.get(key, 0) + 1
            return
        assert scored.json() == {"scored": self.rows}
        self.first_scored_at.setdefault(revision, time.monotonic())
        self.scored[revision] = self.scored.get(revision, 0) + self.rows


class Scenario:
    def __init__(self, control_plane, namespace, tmp_path, kind, subnet, report_subnet,
                 **operator_settings):
        self.cluster = Cluster(control_plane.api_client())
        self.namespace, self.tmp, self.kind = namespace, tmp_path, kind
        self.name = {"classifier": "iris", "regressor": "diabetes"}[kind]
        self.subnet, self.report_subnet = subnet, report_subnet
        self.artifacts = _artifacts(tmp_path, kind)
        self.ips: dict[str, str] = {}
        self.servers: list[ServingProcess] = []
        self.operator = OperatorProcess(control_plane.kubeconfig, tmp_path / "operator.log",
                                        **operator_settings)

    def apply(self, version: str, rollback: dict) -> None:
        uri, sha = self.artifacts[version]
        spec = {"version": version, "artifact": {"uri": uri, "sha256": sha}, "replicas": 1,
                "rollback": {**FAST, **rollback}}
        try:
            self.cluster.create(self.namespace, {
                "apiVersion": contract.API_GROUP_VERSION, "kind": contract.MODEL_KIND,
                "metadata": {"name": self.name}, "spec": spec})
        except Exception:
            self.cluster.patch_spec(self.namespace, self.name, spec)

    def feedback_key(self) -> str:
        secret = wait_for(lambda: self._secret(), what="the feedback Secret")
        return base64.b64decode(secret.data[contract.FEEDBACK_SECRET_KEY]).decode()

    def _secret(self):
        try:
            return self.cluster.core.read_namespaced_secret(feedback_secret_name(self.name),
                                                            self.namespace)
        except Exception:
            return None

    def serve(self, version: str) -> str:
        """Start the pod stand-in for `version`'s Deployment, with the Secret's key in its env
        (valueFrom entries are not in deployment_env), and report its pod Ready."""
        deployment = wait_for(lambda: next((d for d in self.cluster.deployments(
            self.namespace, self.name).values() if d.metadata.labels[contract.LABEL_VERSION]
            == version), None), what=f"v{version} Deployment")
        env_names = [e.name for e in deployment.spec.template.spec.containers[0].env]
        assert contract.ENV_FEEDBACK_KEY in env_names, "the Deployment must carry the key"
        revision = deployment.metadata.labels[contract.LABEL_REVISION]
        n = len(self.servers) + 2
        env = {**deployment_env(deployment), contract.ENV_FEEDBACK_KEY: self.feedback_key()}
        server = ServingProcess(env, f"{self.subnet}.{n}", self.tmp / f"v{version}").start()
        self.servers.append(server)
        self.ips[revision] = server.ip
        wait_for(lambda: self.cluster.mark_pods_ready(
            self.namespace, self.name, revision, f"{self.report_subnet}.{n}") == 1,
            what=f"v{version} pod")
        return revision

    def status(self) -> dict:
        return self.cluster.model(self.namespace, self.name).get("status", {})

    def condition(self, type_: str) -> dict:
        return next(c for c in self.status().get("conditions", []) if c["type"] == type_)

    def close(self) -> None:
        self.operator.stop()
        for server in self.servers:
            server.stop()


@pytest.fixture
def scenario(request, control_plane, crds, namespace, tmp_path):
    kind, source = request.param
    subnet = {("classifier", "scrape"): "127.77.5", ("regressor", "scrape"): "127.77.6",
              ("classifier", "prometheus"): "127.77.7"}[(kind, source)]
    prometheus, settings, report = None, {}, subnet
    if source == "prometheus":
        targets = {f"{subnet}.{n}:{contract.DEFAULT_PORT}": {"namespace": namespace}
                   for n in range(2, 5)}
        prometheus = PrometheusProcess(targets, tmp_path / "prometheus")
        settings["prometheus_url"] = prometheus.url
        report = DEAD_SUBNET  # the operator cannot scrape the pods: PromQL or nothing
    built = Scenario(control_plane, namespace, tmp_path, kind, subnet, report, **settings)
    built.prometheus = prometheus
    built.operator.start()
    yield built
    built.close()
    if prometheus:
        prometheus.stop()
    assert "Traceback" not in built.operator.log(), built.operator.log()[-4000:]


def _rolls_back(s: Scenario, rule: dict, reason: str, measure: str) -> tuple[dict, float]:
    """v1 promoted, bad v2 rolled back on `rule`; returns (record, seconds from v2's first
    scored feedback to the rollback record)."""
    s.apply("1", {**rule, "bakeWindow": "3s"})
    v1 = s.serve("1")
    with Feedback(s, rows=25, per_second=8) as feedback:
        wait_for(lambda: s.status().get("lastGoodVersion") == "1", timeout=60, what="v1 promoted")
        s.apply("2", {**rule, "bakeWindow": "5m"})
        v2 = s.serve("2")
        wait_for(lambda: s.cluster.service_revision(s.namespace, s.name) == v2, what="v2 serving")
        first_failed: list[float] = []
        failed_analysis: list[dict] = []

        def rolled_back():
            status = s.status()
            analysis = status.get("analysis") or {}
            if (analysis.get("revision"), analysis.get("result")) == (v2, "Failed"):
                first_failed.append(time.monotonic())
                failed_analysis.append(analysis)  # the window that judged v2, before v1's
            return status.get("rollback")
        record = wait_for(rolled_back, timeout=90, interval=0.1, what="a rollback")
        took = time.monotonic() - feedback.first_scored_at[v2]
        after_bad = time.monotonic() - first_failed[0] if first_failed else 0.0
        wait_for(lambda: s.cluster.service_revision(s.namespace, s.name) == v1,
                 what="Service on v1")
    assert (record["fromVersion"], record["toVersion"]) == ("2", "1")
    assert record["reason"] == reason, record
    message = record["message"].lower()
    assert measure in message and "scored rows" in message, record
    assert record["errorRate"] == 0, record  # no request failed: quality alone rolled it back
    assert feedback.scored.get(v1, 0) > 0 and feedback.scored[v2] >= 100
    assert not feedback.refused, feedback.refused
    stalled = s.condition("Stalled")
    assert (stalled["status"], stalled["reason"]) == ("True", "RolledBack")
    assert measure in stalled["message"].lower(), stalled
    assert failed_analysis, "the failing window about v2 was seen in status.analysis"
    quality = failed_analysis[-1]["quality"]  # v1's first window after it may have none yet
    assert quality["scoredRows"] >= 100, quality
    history = s.status()["history"]
    assert [h["phase"] for h in history if h["version"] == "2"][-1] == "RolledBack"
    wait_for(lambda: ("Warning", "RolledBack") in s.cluster.events(s.namespace, s.name),
             what="Event")
    print(f"{s.kind}: first scored v2 feedback -> rollback {took:.1f} s, first bad window "
          f"(Failed in status) -> rollback {after_bad:.1f} s; record {record}; "
          f"analysis.quality {quality}")
    return record, took


@pytest.mark.parametrize("scenario", [("classifier", "scrape"), ("classifier", "prometheus")],
                         indirect=True)
def test_classifier_below_min_accuracy_is_rolled_back(scenario):
    s = scenario
    _rolls_back(s, {"minAccuracy": 0.8}, REASON_ACCURACY, "accuracy")
    v1 = s.status()["servingRevision"]
    with Feedback(s, rows=25, per_second=8) as feedback:
        def v1_quality():
            analysis = s.status()["analysis"]
            quality = analysis.get("quality") or {}
            return analysis.get("revision") == v1 and quality.get("accuracy", 0) > 0.9 and quality
        # after the rollback the analysis judges v1 again: its quality is good and measured
        quality = wait_for(v1_quality, timeout=30, what="v1's accuracy in status.analysis.quality")
    assert quality["scoredRows"] >= 1 and set(quality) >= {"accuracy", "precision", "recall"}
    assert feedback.scored[v1] > 0 and not feedback.refused
    if s.prometheus is not None:
        # the counters the decision used are in Prometheus, from the serving code itself
        answer = requests.get(f"{s.prometheus.url}/api/v1/query", timeout=5, params={
            "query": f'sum by (version) ({contract.METRIC_FEEDBACK_ROWS}'
                     f'{{namespace="{s.namespace}",model="iris"}})'}).json()
        versions = {r["metric"]["version"]: float(r["value"][1])
                    for r in answer["data"]["result"]}
        assert versions.get("2", 0) >= 100 and versions.get("1", 0) > 0, versions
        assert "no ready serving pod" not in s.operator.log()


@pytest.mark.parametrize("scenario", [("regressor", "scrape")], indirect=True)
def test_regressor_above_max_rmse_is_rolled_back(scenario):
    record, _ = _rolls_back(scenario, {"maxRmse": 80}, REASON_RMSE, "rmse")
    assert "> 80" in record["message"], record


@pytest.mark.parametrize("scenario", [("classifier", "scrape")], indirect=True)
def test_too_few_scored_rows_never_roll_back(scenario):
    """v2 is as wrong as above, but each 3 s window scores ~30 rows (< minScoredRows 100):
    it is measured and shown, never a breach."""
    s = scenario
    rule = {"minAccuracy": 0.8}
    s.apply("1", {**rule, "bakeWindow": "3s"})
    s.serve("1")
    seen: dict[str, dict] = {}
    with Feedback(s, rows=2, per_second=5) as feedback:
        wait_for(lambda: s.status().get("lastGoodVersion") == "1", timeout=60, what="v1 promoted")
        s.apply("2", {**rule, "bakeWindow": "5m"})
        v2 = s.serve("2")
        wait_for(lambda: s.cluster.service_revision(s.namespace, s.name) == v2, what="v2 serving")
        deadline = time.monotonic() + 45
        while len(seen) < 10 and time.monotonic() < deadline:
            status = s.status()
            assert not status.get("rollback"), status
            analysis = status.get("analysis") or {}
            if analysis.get("revision") == v2 and analysis.get("quality"):
                seen[analysis["lastEvaluated"]] = analysis
            time.sleep(0.25)
    assert len(seen) >= 8, f"only {len(seen)} evaluations with quality"
    for analysis in seen.values():
        assert analysis["consecutiveBreaches"] == 0, analysis
        assert analysis["result"] in ("Passed", "Inconclusive"), analysis
        assert 0 < analysis["quality"]["scoredRows"] < 100, analysis
    assert max(a["quality"]["accuracy"] for a in seen.values()) < 0.8, [a["quality"] for a in seen.values()]
    assert feedback.scored[v2] >= 100, "more than minScoredRows in total, never in one window"
    assert s.cluster.service_revision(s.namespace, s.name) == v2
    assert s.condition("Ready")["status"] == "True"
