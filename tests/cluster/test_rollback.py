"""Automatic rollback end to end on the real control plane, with real serving processes (the
image's own command under gunicorn, started with the env of the Deployment the operator made)
standing in for each version's pod, and traffic that follows the Service selector.

Scenario: v1 serves healthy traffic; v2, whose model fails for some inputs, rolls out; the
operator measures its error rate (by scraping the pods, or through a real Prometheus) and rolls
back to v1; status, Events and metrics say so; re-applying the same spec does not retry v2; a
healthy v3 rolls out and is promoted after its bake window. Also: a healthy version with 1 %
errors, below the 5 % threshold, is never rolled back over 20 evaluations.
"""

from __future__ import annotations

import random
import time
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import requests
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import FunctionTransformer

from modelops import contract
from tests.cluster.support import (Cluster, OperatorProcess, PrometheusProcess, ServiceClient,
                                   ServingProcess, deployment_env, dump_artifacts, wait_for)

FAST = {"interval": "1s", "window": "3s", "consecutiveBreaches": 2, "minRequests": 10,
        "errorRateThreshold": 0.05}


def _artifacts(directory: Path) -> dict[str, tuple[str, str]]:
    """v1/v3 healthy; v2 takes log() of its inputs and then refuses the NaN that a negative
    feature becomes (numpy.asarray_chkfinite), so it raises inside the model (a 500)."""
    X, y = load_iris(return_X_y=True)
    models = {
        "1": LogisticRegression(max_iter=500).fit(X, y),
        "2": make_pipeline(FunctionTransformer(np.log), FunctionTransformer(np.asarray_chkfinite),
                           LogisticRegression(max_iter=500)).fit(X + 1, y),
        "3": LogisticRegression(C=0.5, max_iter=500).fit(X, y),
    }
    return dump_artifacts(directory, models)


class Traffic(ServiceClient):
    """v2 infer requests back to back, a `bad_share` of them with a row v2 fails on."""

    def __init__(self, cluster: Cluster, namespace: str, ips: dict[str, str], bad_share: float):
        super().__init__(cluster, namespace, "iris", ips)
        self.bad_share = bad_share
        self.codes: Counter = Counter()
        self.first_error_at: float | None = None
        self.rng = random.Random(7)

    def send(self, session: requests.Session, revision: str, base: str) -> None:
        row = [-1.0, 3.5, 1.4, 0.2] if self.rng.random() < self.bad_share else [5.1, 3.5, 1.4, 0.2]
        body = {"inputs": [{"name": "input-0", "shape": [1, 4], "datatype": "FP64", "data": row}]}
        self.count(revision, session.post(f"{base}/v2/models/iris/infer", json=body,
                                          timeout=5).status_code)

    def unreachable(self, revision: str) -> None:
        self.count(revision, 0)

    def count(self, revision: str, code: int) -> None:
        self.codes[(revision, code)] += 1
        if code >= 500 and self.first_error_at is None:
            self.first_error_at = time.monotonic()


def _model(version: str, artifact: tuple[str, str], bake: str) -> dict:
    return {"apiVersion": contract.API_GROUP_VERSION, "kind": contract.MODEL_KIND,
            "metadata": {"name": "iris"},
            "spec": {"version": version, "artifact": {"uri": artifact[0], "sha256": artifact[1]},
                     "replicas": 1, "rollback": {**FAST, "bakeWindow": bake}}}


class Scenario:
    def __init__(self, control_plane, namespace, tmp_path, subnet, **operator_settings):
        self.cluster = Cluster(control_plane.api_client())
        self.namespace, self.tmp, self.subnet = namespace, tmp_path, subnet
        self.artifacts = _artifacts(tmp_path)
        self.ips: dict[str, str] = {}
        self.servers: list[ServingProcess] = []
        self.operator = OperatorProcess(control_plane.kubeconfig, tmp_path / "operator.log",
                                        **operator_settings)

    def apply(self, version: str, bake: str) -> None:
        body = _model(version, self.artifacts[version], bake)
        try:
            self.cluster.create(self.namespace, body)
        except Exception:
            self.cluster.patch_spec(self.namespace, "iris", body["spec"])

    def serve(self, version: str) -> str:
        """Start the pod stand-in for `version`'s Deployment and report its pod Ready."""
        deployment = wait_for(lambda: next((d for d in self.cluster.deployments(
            self.namespace, "iris").values() if d.metadata.labels[contract.LABEL_VERSION]
            == version), None), what=f"v{version} Deployment")
        revision = deployment.metadata.labels[contract.LABEL_REVISION]
        ip = f"{self.subnet}.{len(self.servers) + 2}"
        server = ServingProcess(deployment_env(deployment), ip, self.tmp / f"v{version}").start()
        self.servers.append(server)
        self.ips[revision] = ip
        wait_for(lambda: self.cluster.mark_pods_ready(self.namespace, "iris", revision, ip) == 1,
                 what=f"v{version} pod")
        return revision

    def status(self) -> dict:
        return self.cluster.model(self.namespace, "iris").get("status", {})

    def close(self) -> None:
        self.operator.stop()
        for server in self.servers:
            server.stop()


@pytest.fixture
def scenario(request, control_plane, crds, namespace, tmp_path):
    source = request.param
    subnet = {"scrape": "127.77.1", "prometheus": "127.77.2"}[source]
    prometheus = None
    settings = {}
    if source == "prometheus":
        targets = {f"{subnet}.{n}:{contract.DEFAULT_PORT}": {"namespace": namespace}
                   for n in range(2, 6)}
        prometheus = PrometheusProcess(targets, tmp_path / "prometheus")
        settings["prometheus_url"] = prometheus.url
    built = Scenario(control_plane, namespace, tmp_path, subnet, **settings)
    built.operator.start()
    yield built
    built.close()
    if prometheus:
        prometheus.stop()
    assert "Traceback" not in built.operator.log(), built.operator.log()[-4000:]


@pytest.mark.parametrize("scenario", ["scrape", "prometheus"], indirect=True)
def test_bad_version_is_rolled_back_and_not_retried(scenario):
    s, ns = scenario, scenario.namespace
    s.apply("1", bake="3s")
    v1 = s.serve("1")
    with Traffic(s.cluster, ns, s.ips, bad_share=0.25) as traffic:
        wait_for(lambda: s.status().get("lastGoodVersion") == "1", timeout=60, what="v1 promoted")
        s.apply("2", bake="5m")
        v2 = s.serve("2")
        wait_for(lambda: s.cluster.service_revision(ns, "iris") == v2, what="v2 serving")
        record = wait_for(lambda: s.status().get("rollback"), timeout=90, what="a rollback")
        rolled_back_at = time.monotonic()
        assert (record["fromVersion"], record["toVersion"]) == ("2", "1")
        assert record["reason"] == "ErrorRateAboveThreshold"
        assert record["errorRate"] > 0.05 and record["requests"] >= 10
        # status is written first, then the Service is switched (a moment later)
        wait_for(lambda: s.cluster.service_revision(ns, "iris") == v1, what="Service on v1")
        assert traffic.codes[(v2, 500)] > 0 and traffic.codes[(v1, 500)] == 0
        print(f"first failing request -> rollback: "
              f"{rolled_back_at - traffic.first_error_at:.1f} s (source {s.operator.env.get('MODELOPS_OPERATOR_PROMETHEUS_URL', 'scrape')})")
    assert s.cluster.condition(ns, "iris", "Stalled") == ("True", "RolledBack")
    assert s.cluster.condition(ns, "iris", "Ready") == ("False", "RolledBack")
    wait_for(lambda: ("Warning", "RolledBack") in s.cluster.events(ns, "iris"), what="Event")
    history = s.status()["history"]
    assert [h["phase"] for h in history if h["version"] == "2"][-1] == "RolledBack"
    assert "Failed" not in [h["phase"] for h in history if h["version"] == "1"]
    metrics = requests.get(f"http://127.0.0.1:{s.operator.metrics_port}/metrics", timeout=5).text
    assert (f'{contract.METRIC_ROLLBACKS}{{from="2",model="iris",namespace="{ns}",to="1"}} 1.0'
            in metrics)

    # Argo CD re-applies the same spec: nothing changes, v2 is not retried
    generation = s.cluster.model(ns, "iris")["metadata"]["generation"]
    s.apply("2", bake="5m")
    time.sleep(5)
    assert s.cluster.model(ns, "iris")["metadata"]["generation"] == generation
    assert s.cluster.service_revision(ns, "iris") == v1
    assert s.cluster.deployments(ns, "iris")[v2].spec.replicas == 0

    # a new, healthy version rolls out and is promoted after its bake window
    s.apply("3", bake="4s")
    v3 = s.serve("3")
    with Traffic(s.cluster, ns, s.ips, bad_share=0.0):
        wait_for(lambda: s.cluster.service_revision(ns, "iris") == v3, what="v3 serving")
        wait_for(lambda: s.status().get("lastGoodVersion") == "3", timeout=60, what="v3 promoted")
    assert s.cluster.condition(ns, "iris", "Ready") == ("True", "Serving")
    wait_for(lambda: ("Normal", "Promoted") in s.cluster.events(ns, "iris"), what="Event")


@pytest.mark.parametrize("scenario", ["scrape"], indirect=True)
def test_healthy_version_with_noise_below_threshold_is_never_rolled_back(scenario):
    s, ns = scenario, scenario.namespace
    s.apply("1", bake="3s")
    s.serve("1")
    wait_for(lambda: s.status().get("lastGoodVersion") == "1", timeout=60, what="v1 promoted")
    s.apply("2", bake="5m")
    v2 = s.serve("2")
    evaluations: set[str] = set()
    with Traffic(s.cluster, ns, s.ips, bad_share=0.01) as traffic:
        wait_for(lambda: s.cluster.service_revision(ns, "iris") == v2, what="v2 serving")
        deadline = time.monotonic() + 120
        while len(evaluations) < 21 and time.monotonic() < deadline:
            analysis = s.status().get("analysis") or {}
            if analysis.get("revision") == v2 and analysis.get("result") in ("Passed", "Failed"):
                evaluations.add(analysis["lastEvaluated"])
            assert not s.status().get("rollback"), s.status()
            time.sleep(0.25)
    assert len(evaluations) >= 20, f"only {len(evaluations)} evaluations"
    errors = traffic.codes[(v2, 500)]
    assert 0 < errors < 0.05 * sum(n for (rev, _), n in traffic.codes.items() if rev == v2)
    assert s.cluster.service_revision(ns, "iris") == v2


@pytest.mark.parametrize("scenario", ["scrape"], indirect=True)
def test_v2_while_v1_bakes_rolls_back_to_v1_and_edits_do_not_re_serve(scenario):
    """The issue's first report: v2 applied while v1 is still baking. v1 must stay warm and be
    the rollback target; a threshold or replicas edit afterwards must not re-serve v2."""
    s, ns = scenario, scenario.namespace
    s.apply("1", bake="5m")
    v1 = s.serve("1")
    with Traffic(s.cluster, ns, s.ips, bad_share=0.25) as traffic:
        wait_for(lambda: (s.status().get("analysis") or {}).get("revision") == v1,
                 timeout=60, what="v1 judged once")
        assert not s.status().get("lastGoodVersion"), "v1 still bakes"
        s.apply("2", bake="5m")
        v2 = s.serve("2")
        wait_for(lambda: s.cluster.service_revision(ns, "iris") == v2, what="v2 serving")
        assert s.cluster.deployments(ns, "iris")[v1].spec.replicas == 1, "v1 stays warm"
        record = wait_for(lambda: s.status().get("rollback"), timeout=90, what="a rollback")
        assert (record["fromVersion"], record["toVersion"]) == ("2", "1")
        wait_for(lambda: s.cluster.service_revision(ns, "iris") == v1, what="Service on v1")
        assert traffic.codes[(v1, 500)] == 0
    phases = {r["revision"]: r["phase"] for r in s.status()["revisions"]}
    assert phases[v2] == "RolledBack" and phases[v1] in ("Baking", "Promoted")
    s.cluster.patch_spec(ns, "iris", {"replicas": 1, "rollback": {
        **FAST, "bakeWindow": "5m", "errorRateThreshold": 0.5}})
    time.sleep(5)
    assert s.cluster.service_revision(ns, "iris") == v1, "a threshold edit does not unblock v2"
    assert s.cluster.condition(ns, "iris", "Stalled") == ("True", "RolledBack")
