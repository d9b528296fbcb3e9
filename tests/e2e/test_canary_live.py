"""Canary steps on a real node: the serving pods hand the step's share of the users' requests to
the candidate through its own Service (cluster DNS, kube-proxy) and relay its answers, learning
the share from annotations the kubelet writes into their downward-API file; the operator judges
each step on the counters it scrapes from them.

(b) A candidate that errors on some rows is aborted at the 10 % step; the share of user requests
it answered is measured against the step's weight. (c) A good candidate goes 10 -> 50 -> 100 %
and bakes. Each is timed from the candidate's apply; the clients hold keep-alive connections
through the Model's Service and every answer names its version (the Modelops-Version header).
"""

from __future__ import annotations

import time

from tests.cluster.support import wait_for
from tests.e2e.support import apply, deploy_v1, model_manifest, service_url, sha256_hex

NAME = "canaried"
CANARY = {"steps": [10, 50], "stepDuration": "15s", "minRequests": 20, "maxErrorRate": 0.05}
EDGE = 4.0  # seconds trimmed off each side of a step: the pods' annotation files catch up


def _record(api, namespace: str, version: str) -> dict:
    status = api.model(namespace, NAME).get("status") or {}
    return next((r for r in status.get("revisions") or [] if r["version"] == version), {})


def _share(answered: list, version: str, start: float, end: float) -> tuple[float, int]:
    """(share of the HTTP answers in [start, end) that `version` gave, how many answers)."""
    inside = [v for t, v, _ in answered if start <= t < end]
    return (sum(v == version for v in inside) / len(inside) if inside else 0.0), len(inside)


def _when(api, namespace: str, condition, what: str, timeout: float = 300) -> float:
    wait_for(lambda: condition(), timeout=timeout, interval=0.5, what=what)
    return time.time()


def test_an_erroring_candidate_is_aborted_at_the_first_step_and_a_good_one_goes_step_by_step(
        e2e_cluster, namespace, artifacts, client, record_property):
    deploy_v1(e2e_cluster, namespace, artifacts, NAME, replicas=2)
    api = e2e_cluster.api()
    host = service_url(NAME, namespace, "").removeprefix("http://")
    load = client.start_keepalive(host, f"/v2/models/{NAME}/infer", concurrency=2,
                                  max_seconds=500, bad_share=0.3)
    try:
        applied = time.time()
        apply(e2e_cluster.access, namespace, model_manifest(
            NAME, "2", "configMap://artifacts/flaky.joblib",
            sha256_hex(artifacts["flaky.joblib"]), rollout={"canary": CANARY}))
        b_canary = _when(api, namespace, lambda: _record(api, namespace, "2").get("phase")
                         == "Canary", "v2 in canary")
        b_abort = _when(api, namespace, lambda: _record(api, namespace, "2").get("phase")
                        == "Failed", "v2 aborted")
        aborted = _record(api, namespace, "2")
        time.sleep(8)  # the share goes back to v1 once the pods' files say so
        c_applied = time.time()
        apply(e2e_cluster.access, namespace, model_manifest(
            NAME, "3", "configMap://artifacts/good.joblib", sha256_hex(artifacts["good.joblib"]),
            rollback={"bakeWindow": "10m"}, rollout={"canary": CANARY}))
        c_canary = _when(api, namespace, lambda: _record(api, namespace, "3").get("phase")
                         == "Canary", "v3 in canary")
        c_step2 = _when(api, namespace, lambda: _record(api, namespace, "3").get("canaryStep")
                        == 1, "v3 at step 2")
        c_serving = _when(api, namespace, lambda: api.model(namespace, NAME)["status"].get(
            "servingVersion") == "3", "v3 serving")
        time.sleep(8)
    finally:
        result = load.stop()
    answered = result["answered"]
    b_share, b_count = _share(answered, "2", b_canary, b_abort)
    b_errors = sum(1 for t, v, code in answered if v == "2" and code >= 500)
    # up to v3's apply, not to when the poll saw it in Canary: its share may start first
    after_abort = [(v, code) for t, v, code in answered if b_abort + 6 <= t < c_applied]
    share_10, n_10 = _share(answered, "3", c_canary + EDGE, c_step2)
    share_50, n_50 = _share(answered, "3", c_step2 + EDGE, c_serving)
    figures = {"b_seconds_apply_to_abort": round(b_abort - applied, 1),
               "b_seconds_canary_to_abort": round(b_abort - b_canary, 1),
               "b_share_answered_by_candidate": round(b_share, 4),
               "b_user_errors_from_candidate": b_errors,
               "c_seconds_apply_to_serving": round(c_serving - c_applied, 1),
               "c_share_at_10": round(share_10, 4), "c_share_at_50": round(share_50, 4)}
    for key, value in figures.items():
        record_property(key, value)
    print(f"\ncanary: {figures}; v2 {aborted.get('canary')}; answers at 10 % {n_10}, at 50 % "
          f"{n_50}; codes {result['codes']}")
    odd = [(round(t - c_applied, 2), code, text) for t, code, text in result["errors"]
           if code not in (0, 500)]
    print(f"non-500 errors (seconds after v3's apply; v3 in canary at "
          f"{c_canary - c_applied:.2f} s): {len(odd)}, first {odd[:3]}, last {odd[-1:]}")
    assert aborted["reason"] == "CanaryErrorRateAboveThreshold", aborted
    assert aborted["canary"]["step"] == 1 and aborted["replicas"] == 0, aborted
    assert b_count > 0 and b_share <= 0.25, (b_share, b_count)  # the 10 % step, not more
    assert all(v == "1" and code == 200 for v, code in after_abort[-200:]), after_abort[-5:]
    assert set(result["codes"]) <= {200, 500}, odd[:3]  # 500: v2's rows; nothing else, ever
    assert 0.03 <= share_10 <= 0.2 and n_10 >= 100, (share_10, n_10)
    assert 0.35 <= share_50 <= 0.65 and n_50 >= 100, (share_50, n_50)
    served = _record(api, namespace, "3")
    assert served["phase"] == "Baking" and served.get("canaryPassedAt"), served
    late = [v for t, v, _ in answered if t >= c_serving + EDGE]
    assert late and set(late) == {"3"}, set(late)
