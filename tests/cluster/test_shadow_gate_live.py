"""The shadow gate on the real control plane, with real serving processes standing in for each
version's pod (the image's own command under gunicorn, the env of the operator's Deployment)
and a kubelet stand-in writing each pod's downward-API files from the API server.

v1 serves iris traffic that follows the Service. v2, whose predictions differ on 35 % of iris
rows but which never errors, is applied with a shadow policy: it must enter Shadowing, get
copies through its own Service, be stopped (Failed, zero replicas) on the disagreement without
the Service ever selecting it, and the shadow's Service and the pods' annotations must go. v3,
which agrees with v1 on 99 % of rows, passes its shadow and takes the traffic. The operator is
killed (SIGKILL) in the middle of v2's shadow and started again.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import requests
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression

from modelops import contract
from tests.cluster.podinfo import PodInfoFiles, resolve
from tests.cluster.support import (Cluster, OperatorProcess, ServiceClient, ServingProcess,
                                   deployment_env, dump_artifacts, wait_for)

SUBNET = "127.77.11"
SHADOW = {"percent": 100, "minRows": 60, "maxDisagreement": 0.05, "maxErrorRate": 0.02}
ROLLBACK = {"interval": "1s", "window": "3s", "consecutiveBreaches": 2, "minRequests": 10}
X, Y = load_iris(return_X_y=True)
ROWS = X[np.random.default_rng(7).permutation(len(X))]  # iris is sorted by class: mix it


def _artifacts(directory: Path) -> dict[str, tuple[str, str]]:
    models = {"1": LogisticRegression(max_iter=500).fit(X, Y),
              "2": LogisticRegression(max_iter=500).fit(X, np.where(Y == 2, 1, Y)),
              "3": LogisticRegression(C=0.5, max_iter=500).fit(X, Y)}
    return dump_artifacts(directory, models)


class Traffic(ServiceClient):
    """iris rows in a shuffled order, back to back, to whichever revision the Service selects
    (any stretch of them shows v2's 35 % disagreement, give or take the sample)."""

    def __init__(self, cluster: Cluster, namespace: str, ips: dict[str, str]):
        super().__init__(cluster, namespace, "iris", ips)
        self.codes: Counter = Counter()
        self.row = 0

    def send(self, session: requests.Session, revision: str, base: str) -> None:
        row, self.row = ROWS[self.row % len(ROWS)].tolist(), self.row + 1
        answer = session.post(f"{base}/v1/models/iris:predict", json={"instances": [row]},
                              timeout=5)
        self.codes[(revision, answer.status_code)] += 1

    def unreachable(self, revision: str) -> None:
        self.codes[(revision, 0)] += 1

    def answered_by(self, revision: str) -> int:
        return sum(n for (rev, _), n in self.codes.items() if rev == revision)


class Scenario:
    def __init__(self, control_plane, namespace: str, tmp: Path,
                 artifacts: Callable[[Path], dict[str, tuple[str, str]]] = _artifacts):
        self.cluster = Cluster(control_plane.api_client())
        self.namespace, self.tmp = namespace, tmp
        self.artifacts = artifacts(tmp)
        self.ips: dict[str, str] = {}
        self.servers: list[ServingProcess] = []
        self.files: list[PodInfoFiles] = []
        self.operator = OperatorProcess(control_plane.kubeconfig, tmp / "operator.log").start()

    def apply(self, version: str, *, bake: str, shadow: dict | None = None,
              rollout: dict | None = None) -> None:
        uri, sha = self.artifacts[version]
        rollout = {**(rollout or {}), **({"shadow": shadow} if shadow else {})}
        spec = {"version": version, "artifact": {"uri": uri, "sha256": sha}, "replicas": 1,
                "rollback": {**ROLLBACK, "bakeWindow": bake},
                **({"rollout": rollout} if rollout else {})}
        try:
            self.cluster.create(self.namespace, {
                "apiVersion": contract.API_GROUP_VERSION, "kind": contract.MODEL_KIND,
                "metadata": {"name": "iris"}, "spec": spec})
        except Exception:
            self.cluster.patch_spec(self.namespace, "iris", spec)

    def deployment(self, version: str):
        return wait_for(lambda: next((d for d in self.cluster.deployments(
            self.namespace, "iris").values() if d.metadata.labels[contract.LABEL_VERSION]
            == version), None), what=f"v{version} Deployment")

    def serve(self, version: str) -> str:
        """The pod stand-in for `version` (with its downward-API files), reported Ready."""
        deployment = self.deployment(version)
        revision = deployment.metadata.labels[contract.LABEL_REVISION]
        selector = f"{contract.LABEL_MODEL}=iris,{contract.LABEL_REVISION}={revision}"
        pod = wait_for(lambda: self.cluster.core.list_namespaced_pod(
            self.namespace, label_selector=selector).items, what=f"v{version} pod")[0]
        files = PodInfoFiles(self.cluster.core, self.namespace, pod.metadata.name,
                             self.tmp / f"podinfo-v{version}",
                             rewrite=resolve(self.cluster.core, self.namespace))
        self.files.append(files)
        ip = f"{SUBNET}.{len(self.servers) + 2}"
        env = {**deployment_env(deployment), **files.env()}
        self.servers.append(ServingProcess(env, ip, self.tmp / f"v{version}").start())
        self.ips[revision] = ip
        wait_for(lambda: self.cluster.mark_pods_ready(self.namespace, "iris", revision, ip) == 1,
                 what=f"v{version} pod ready")
        return revision

    def status(self) -> dict:
        return self.cluster.model(self.namespace, "iris").get("status", {})

    def record(self, revision: str) -> dict:
        return next((r for r in self.status().get("revisions") or []
                     if r["revision"] == revision), {})

    def wait_for_phase(self, revision: str, phase: str, timeout: float) -> None:
        """Wait for the record's phase; on a timeout say what the record and the serving
        pods' shadow counters show."""
        try:
            wait_for(lambda: self.record(revision).get("phase") == phase, timeout=timeout,
                     what=f"{revision} {phase}")
        except AssertionError as error:
            counters = [line for server in self.servers for line in requests.get(
                f"{server.url}{contract.PATH_METRICS}", timeout=5).text.splitlines()
                if line.startswith("modelops_shadow")]
            raise AssertionError(f"{error}\nrecord: {self.record(revision)}\n"
                                 + "\n".join(counters)) from None

    def pod_annotations(self, revision: str) -> dict:
        pods = self.cluster.core.list_namespaced_pod(
            self.namespace, label_selector=f"{contract.LABEL_REVISION}={revision}").items
        return {k: v for pod in pods for k, v in (pod.metadata.annotations or {}).items()
                if k.startswith("modelops.io/shadow-")}

    def service_names(self) -> set[str]:
        return {s.metadata.name for s in self.cluster.core.list_namespaced_service(
            self.namespace).items}

    def close(self) -> None:
        self.operator.stop()
        for files in self.files:
            files.stop()
        for server in self.servers:
            server.stop()


@pytest.fixture
def scenario(control_plane, crds, namespace, tmp_path):
    built = Scenario(control_plane, namespace, tmp_path)
    yield built
    built.close()
    assert "Traceback" not in built.operator.log(), built.operator.log()[-4000:]


def test_a_disagreeing_candidate_never_serves_and_an_agreeing_one_takes_over(scenario):
    s, ns = scenario, scenario.namespace
    s.apply("1", bake="3s")
    v1 = s.serve("1")
    with Traffic(s.cluster, ns, s.ips) as traffic:
        wait_for(lambda: s.status().get("lastGoodVersion") == "1", timeout=60, what="v1 promoted")
        s.apply("2", bake="5m", shadow=SHADOW)
        v2 = s.serve("2")
        ready_at = time.monotonic()  # includes an operator restart
        wait_for(lambda: s.record(v2).get("phase") == "Shadowing", what="v2 in shadow")
        wait_for(lambda: f"iris-{v2}" in s.service_names(), what="v2's own Service")
        wait_for(lambda: s.pod_annotations(v1).get(contract.ANNOTATION_SHADOW_VERSION) == "2",
                 what="v1's pod told to copy to v2")
        labels = s.cluster.core.list_namespaced_pod(
            ns, label_selector=f"{contract.LABEL_REVISION}={v2}").items[0].metadata.labels
        assert labels.get(contract.LABEL_ROLE) != contract.ROLE_STANDBY  # keeps its connections
        s.operator.kill()  # mid-shadow: the evidence (in memory) starts again, v2 stays out
        assert s.cluster.service_revision(ns, "iris") == v1
        s.operator.start()
        s.wait_for_phase(v2, "Failed", timeout=90)
        failed_in = time.monotonic() - ready_at
        record = s.record(v2)
        assert record["reason"] == "ShadowDisagreementAboveThreshold", record
        assert record["shadow"]["rows"] >= SHADOW["minRows"]
        assert SHADOW["maxDisagreement"] < record["shadow"]["disagreement"] < 0.7, record["shadow"]
        assert record["shadow"]["errorRate"] == 0, record["shadow"]
        assert s.cluster.condition(ns, "iris", "Stalled") == (
            "True", "ShadowDisagreementAboveThreshold")
        wait_for(lambda: s.cluster.deployments(ns, "iris")[v2].spec.replicas == 0,
                 what="v2 scaled to zero")
        wait_for(lambda: f"iris-{v2}" not in s.service_names(), what="v2's Service deleted")
        wait_for(lambda: s.pod_annotations(v1) == {}, what="v1's pod stops copying")
        print(f"\nv2 ready -> stopped in shadow: {failed_in:.1f} s, "
              f"{record['shadow']['rows']} rows compared")
        assert traffic.answered_by(v2) == 0 and traffic.answered_by(v1) > 100, traffic.codes
        assert s.cluster.service_revision(ns, "iris") == v1
        s.cluster.wait_for_events(ns, "iris", ("Normal", "ShadowStarted"),
                                  ("Warning", "ShadowFailed"))

        s.apply("3", bake="3s", shadow=SHADOW)
        starting = s.deployment("3").metadata.labels[contract.LABEL_REVISION]
        # its Service before its pods are ready: kube-proxy programs it while they start
        wait_for(lambda: f"iris-{starting}" in s.service_names(), what="v3's Service early")
        v3 = s.serve("3")
        ready_at = time.monotonic()
        wait_for(lambda: s.cluster.service_revision(ns, "iris") == v3, timeout=90,
                 what="v3 serving after its shadow")
        record = s.record(v3)
        print(f"v3 ready -> serving after its shadow: {time.monotonic() - ready_at:.1f} s, "
              f"{record['shadow']['rows']} rows compared")
        assert record.get("shadowPassedAt") and record["shadow"]["rows"] >= SHADOW["minRows"]
        assert record["shadow"]["disagreement"] <= SHADOW["maxDisagreement"], record["shadow"]
        wait_for(lambda: s.status().get("lastGoodVersion") == "3", timeout=60, what="v3 promoted")
    s.cluster.wait_for_events(ns, "iris", ("Normal", "ShadowPassed"))
    assert traffic.answered_by(v2) == 0 and traffic.answered_by(v3) > 0
    wait_for(lambda: f"iris-{v3}" not in s.service_names(), what="v3's shadow Service deleted")
    assert s.pod_annotations(v1) == {}  # v1's pods, if still up, copy nothing
