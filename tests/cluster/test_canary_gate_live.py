"""Canary steps on the real control plane, with real serving processes standing in for each
version's pod and a kubelet stand-in writing their downward-API files (as the shadow gate's
live test, whose scenario this reuses).

v1 serves iris traffic that follows the Service; 30 % of the rows have a negative first
feature. v2 takes log() of its inputs first, so it answers those rows with a 500: applied with
canary steps, it must enter Canary, answer about the first step's share through v1's process,
and be aborted (Failed, zero replicas) at that step with the Service never selecting it. v3 (a
good model) goes through both steps and takes the Service. Every answer names who gave it.
"""

from __future__ import annotations

import time
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import requests
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import FunctionTransformer

from modelops import contract
from tests.cluster.support import ServiceClient, dump_artifacts, wait_for
from tests.cluster.test_shadow_gate_live import ROWS, Scenario, X, Y

CANARY = {"steps": [20, 50], "stepDuration": "3s", "minRequests": 15, "maxErrorRate": 0.05}
BAD_SHARE = 0.3


def _artifacts(directory: Path) -> dict[str, tuple[str, str]]:
    models = {"1": LogisticRegression(max_iter=500).fit(X, Y),
              "2": make_pipeline(FunctionTransformer(np.log),
                                 LogisticRegression(max_iter=500)).fit(X, Y),
              "3": LogisticRegression(C=0.5, max_iter=500).fit(X, Y)}
    return dump_artifacts(directory, models)


class Traffic(ServiceClient):
    """iris rows, BAD_SHARE of them with a negative first feature, back to back through the
    Service stand-in; counts (answering version, status) from the Modelops-Version header."""

    def __init__(self, *args):
        super().__init__(*args)
        self.answers: Counter = Counter()
        self.row = 0

    def send(self, session: requests.Session, revision: str, base: str) -> None:
        row, self.row = ROWS[self.row % len(ROWS)].tolist(), self.row + 1
        if self.row % 10 < BAD_SHARE * 10:
            row[0] = -row[0]
        answer = session.post(f"{base}/v1/models/iris:predict", json={"instances": [row]},
                              timeout=5)
        self.answers[(answer.headers.get(contract.HEADER_VERSION), answer.status_code)] += 1

    def unreachable(self, revision: str) -> None:
        self.answers[(None, 0)] += 1

    def snapshot(self) -> Counter:
        return Counter(self.answers)


def _by_version(answers: Counter) -> Counter:
    out: Counter = Counter()
    for (version, _), n in answers.items():
        out[version] += n
    return out


@pytest.fixture
def scenario(control_plane, crds, namespace, tmp_path):
    built = Scenario(control_plane, namespace, tmp_path, artifacts=_artifacts)
    yield built
    built.close()
    assert "Traceback" not in built.operator.log(), built.operator.log()[-4000:]


def _canary_annotations(s: Scenario, revision: str) -> dict:
    pods = s.cluster.core.list_namespaced_pod(
        s.namespace, label_selector=f"{contract.LABEL_REVISION}={revision}").items
    return {k: v for pod in pods for k, v in (pod.metadata.annotations or {}).items()
            if k.startswith("modelops.io/canary-")}


def test_an_erroring_candidate_is_aborted_at_its_step_and_a_good_one_goes_step_by_step(scenario):
    s, ns = scenario, scenario.namespace
    s.apply("1", bake="3s")
    v1 = s.serve("1")
    with Traffic(s.cluster, ns, "iris", s.ips) as traffic:
        wait_for(lambda: s.status().get("lastGoodVersion") == "1", timeout=60, what="v1 promoted")
        s.apply("2", bake="5m", rollout={"canary": CANARY})
        v2 = s.serve("2")
        s.wait_for_phase(v2, "Canary", timeout=60)
        wait_for(lambda: _canary_annotations(s, v1).get(contract.ANNOTATION_CANARY_PERCENT)
                 == "20", what="v1's pod told to hand v2 its share")
        started, before = time.monotonic(), traffic.snapshot()
        s.wait_for_phase(v2, "Failed", timeout=90)
        aborted_in, during = time.monotonic() - started, traffic.snapshot() - before
        record = s.record(v2)
        assert record["reason"] == "CanaryErrorRateAboveThreshold", record
        assert record["canary"]["step"] == 1 and record["canary"]["failed"] >= 1, record
        assert s.cluster.condition(ns, "iris", "Stalled") == (
            "True", "CanaryErrorRateAboveThreshold")
        wait_for(lambda: s.cluster.deployments(ns, "iris")[v2].spec.replicas == 0,
                 what="v2 scaled to zero")
        wait_for(lambda: _canary_annotations(s, v1) == {}, what="v1's pod stops handing out")
        share = _by_version(during)["2"] / max(sum(during.values()), 1)
        print(f"\nv2 canary -> aborted: {aborted_in:.1f} s; answers meanwhile {dict(during)}; "
              f"share answered by v2 {share:.1%} (step 20 %)")
        assert 0 < share < 0.4, during
        assert s.cluster.service_revision(ns, "iris") == v1

        s.apply("3", bake="3s", rollout={"canary": CANARY})
        v3 = s.serve("3")
        ready_at = time.monotonic()
        wait_for(lambda: s.cluster.service_revision(ns, "iris") == v3, timeout=120,
                 what="v3 serving after its canary")
        record = s.record(v3)
        print(f"v3 ready -> serving after two canary steps: {time.monotonic() - ready_at:.1f} s")
        assert record.get("canaryPassedAt") and record["phase"] in ("Baking", "Promoted"), record
    s.cluster.wait_for_events(ns, "iris", "CanaryStarted", "CanaryAborted", "CanaryStepPassed",
                              "CanaryPassed")
    assert _by_version(traffic.answers)["3"] > 0
    assert not any(v == "3" and code >= 500 for v, code in traffic.answers), traffic.answers
