"""The shadow gate on a real node: the serving pods copy live requests to the candidate through
its own Service (cluster DNS, kube-proxy), learning the target from annotations the kubelet
writes into their downward-API file, and the operator judges the candidate on the counters it
scrapes from them.

(a) A candidate whose predictions differ on 30 % of rows but never errors is stopped in shadow:
it answers no user request, its pods go to zero and the serving version never stops answering.
(c) A candidate that agrees takes the Service only after its shadow passed. Both are timed from
the candidate's apply; clients hold keep-alive connections through the Model's Service.
"""

from __future__ import annotations

import time

from tests.cluster.support import wait_for
from tests.e2e.support import apply, deploy_v1, model_manifest, service_url, sha256_hex

NAME = "shadowed"
SHADOW = {"percent": 100, "minRows": 100, "maxDisagreement": 0.05, "maxErrorRate": 0.02}


def _record(api, namespace: str, version: str) -> dict:
    status = api.model(namespace, NAME).get("status") or {}
    return next((r for r in status.get("revisions") or [] if r["version"] == version), {})


def test_a_disagreeing_candidate_is_stopped_in_shadow_and_an_agreeing_one_takes_over(
        e2e_cluster, namespace, artifacts, client, record_property):
    deploy_v1(e2e_cluster, namespace, artifacts, NAME, replicas=2)
    api = e2e_cluster.api()
    host = service_url(NAME, namespace, "").removeprefix("http://")
    load = client.start_keepalive(host, f"/v2/models/{NAME}/infer", concurrency=2,
                                  max_seconds=400, bad_share=0.3)
    try:
        applied = time.monotonic()
        apply(e2e_cluster.access, namespace, model_manifest(
            NAME, "2", "configMap://artifacts/disagree.joblib",
            sha256_hex(artifacts["disagree.joblib"]), rollout={"shadow": SHADOW}))
        wait_for(lambda: _record(api, namespace, "2").get("phase") == "Failed", timeout=300,
                 interval=1, what="v2 stopped in shadow")
        stopped_in = round(time.monotonic() - applied, 1)
        failed = _record(api, namespace, "2")
        apply(e2e_cluster.access, namespace, model_manifest(
            NAME, "3", "configMap://artifacts/good.joblib", sha256_hex(artifacts["good.joblib"]),
            rollback={"bakeWindow": "10m"}, rollout={"shadow": SHADOW}))  # it agrees with v1
        applied = time.monotonic()
        wait_for(lambda: api.model(namespace, NAME)["status"].get("servingVersion") == "3",
                 timeout=300, interval=1, what="v3 serving after its shadow")
        passed_in = round(time.monotonic() - applied, 1)
        time.sleep(5)
    finally:
        result = load.stop()
    passed = _record(api, namespace, "3")
    record_property("seconds_apply_to_stopped_in_shadow", stopped_in)
    record_property("seconds_apply_to_serving_after_shadow", passed_in)
    print(f"\nshadow: v2 stopped {stopped_in} s after its apply ({failed['shadow']}); v3 took "
          f"the Service {passed_in} s after its apply ({passed['shadow']}); codes "
          f"{result['codes']}")
    assert failed["reason"] == "ShadowDisagreementAboveThreshold", failed
    assert SHADOW["maxDisagreement"] < failed["shadow"]["disagreement"] < 0.55, failed["shadow"]
    assert failed["shadow"]["errorRate"] == 0
    assert failed["replicas"] == 0
    versions = {v for _, v in result["answers"]}
    assert "2" not in versions and {"1", "3"} <= versions, versions
    assert result["codes"].keys() == {200}, result["errors"][:5]
    assert passed.get("shadowPassedAt") and passed["shadow"]["rows"] >= SHADOW["minRows"]
    assert passed["shadow"]["disagreement"] <= SHADOW["maxDisagreement"], passed["shadow"]


def test_a_request_pinned_to_the_version_in_shadow_is_answered_by_it_through_the_service(
        e2e_cluster, namespace, artifacts, client, record_property):
    """OIP's versioned route through the Model's Service (DNS, kube-proxy) reaches the candidate
    while it is in shadow (a gate that cannot conclude keeps it there), and only then."""
    name = "pinned"
    deploy_v1(e2e_cluster, namespace, artifacts, name)
    api = e2e_cluster.api()
    row = {"inputs": [{"name": "x", "shape": [1, 4], "datatype": "FP64",
                       "data": [-1.0, 3.5, 1.4, 0.2]}]}  # a row on which v2 disagrees
    pinned_url = service_url(name, namespace, f"/v2/models/{name}/versions/2/infer")
    status, body = client.predict(pinned_url, row)
    assert status == 404 and "reaches version 1" in body["error"], body
    apply(e2e_cluster.access, namespace, model_manifest(
        name, "2", "configMap://artifacts/disagree.joblib",
        sha256_hex(artifacts["disagree.joblib"]),
        rollout={"shadow": {"percent": 100, "minRows": 10**6, "maxDuration": "1h"}}))
    wait_for(lambda: (api.model(namespace, name).get("status") or {}).get("revisions") and any(
        r["version"] == "2" and r["phase"] == "Shadowing"
        for r in api.model(namespace, name)["status"]["revisions"]),
        timeout=240, interval=1, what="v2 in shadow")
    shadowing = time.monotonic()
    wait_for(lambda: client.predict(pinned_url, row)[0] == 200, timeout=120, interval=1,
             what="a pinned request answered once the serving pod's annotations name v2")
    reached_in = round(time.monotonic() - shadowing, 1)
    status, theirs = client.predict(pinned_url, row)
    _, ours = client.predict(service_url(name, namespace, f"/v2/models/{name}/infer"), row)
    _, unknown = client.predict(service_url(name, namespace, f"/v2/models/{name}/versions/7/infer"),
                                row)
    record_property("seconds_shadowing_to_first_pinned_answer", reached_in)
    print(f"\npinned: first answer from v2 {reached_in} s after it entered shadow")
    assert (status, theirs["model_version"], ours["model_version"]) == (200, "2", "1")
    assert theirs["outputs"][0]["data"] != ours["outputs"][0]["data"]
    assert "reaches version 1, 2 (in shadow)" in unknown["error"], unknown
    assert api.model(namespace, name)["status"]["servingVersion"] == "1"
