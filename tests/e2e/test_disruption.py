"""Killing a serving pod under traffic: the Model runs two replicas behind its Service, a client
pod keeps CONCURRENCY requests in flight, and one pod is deleted (SIGTERM, then its grace
period). At most the requests in flight on that pod may fail, so never more than CONCURRENCY,
and nothing may fail before the kill; the figures are printed (-s) and kept as properties."""

from __future__ import annotations

import json
import time

from modelops import contract
from tests.cluster.support import wait_for
from tests.e2e.support import deploy_v1, pods, v1_predict_url

CONCURRENCY = 4
LOAD_SECONDS = 40.0
BEFORE_KILL = 8.0  # seconds of steady traffic on both pods before one is deleted


def _ready_endpoints(access, namespace: str, service: str) -> int:
    slices = json.loads(access.kubectl(
        "get", "endpointslices", "-n", namespace, "-l", f"kubernetes.io/service-name={service}",
        "-o", "json").stdout)["items"]
    return sum(1 for s in slices for e in s.get("endpoints") or []
               if (e.get("conditions") or {}).get("ready"))


def _steady_pods(access, namespace: str, selector: str) -> list[str]:
    """Names of the pods that are Ready and not terminating."""
    return [p["metadata"]["name"] for p in pods(access, namespace, selector)
            if not p["metadata"].get("deletionTimestamp")
            and any(c["type"] == "Ready" and c["status"] == "True"
                    for c in p["status"].get("conditions", []))]


def test_killing_a_serving_pod_loses_at_most_the_requests_in_flight(
        e2e_cluster, namespace, artifacts, client, record_property):
    access = e2e_cluster.access
    deploy_v1(e2e_cluster, namespace, artifacts, "steady", replicas=2)
    selector = f"{contract.LABEL_MODEL}=steady"
    wait_for(lambda: len(_steady_pods(access, namespace, selector)) == 2
             and len(pods(access, namespace, selector)) == 2
             and _ready_endpoints(access, namespace, "steady") == 2,
             timeout=120, interval=1, what="exactly two Ready replicas behind the Service")
    victim = _steady_pods(access, namespace, selector)[0]
    load = client.start_load(v1_predict_url("steady", namespace), concurrency=CONCURRENCY,
                             max_seconds=LOAD_SECONDS)
    try:
        time.sleep(BEFORE_KILL)
        access.kubectl("delete", "pod", victim, "-n", namespace, "--wait=true",
                       "--timeout=90s", timeout=120)
        time.sleep(8)  # and after: the ReplicaSet's replacement joins
    finally:
        result = load.stop()
    failed = result["requests"] - result["codes"].get(200, 0)
    # The load clock starts when `kubectl exec` has started it, a little after our clock.
    before = [e for e in result["errors"] if e[0] < BEFORE_KILL - 1.0]
    record_property("requests", result["requests"])
    record_property("failed", failed)
    print(f"\npod kill under traffic: {result['requests']} requests in {result['seconds']} s, "
          f"{failed} failed (bound: {CONCURRENCY} in flight); errors: {result['errors'][:5]}")
    assert result["requests"] > 50, result
    assert not before, f"requests failed before any pod was killed: {before[:5]}"
    assert failed <= CONCURRENCY, result
