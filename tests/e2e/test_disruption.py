"""Killing a serving pod under traffic: the Model runs two replicas behind its Service, a client
pod keeps CONCURRENCY requests in flight, and one pod is deleted (SIGTERM, then its grace
period). At most the requests in flight on that pod may fail, so never more than CONCURRENCY;
the figures are printed (run with -s to see them) and kept as test properties."""

from __future__ import annotations

import time

from modelops import contract
from tests.cluster.support import wait_for
from tests.e2e.support import deploy_v1, pods, v1_predict_url

CONCURRENCY = 4
LOAD_SECONDS = 40.0


def test_killing_a_serving_pod_loses_at_most_the_requests_in_flight(
        e2e_cluster, namespace, artifacts, client, record_property):
    deploy_v1(e2e_cluster, namespace, artifacts, "steady", replicas=2)
    selector = f"{contract.LABEL_MODEL}=steady"
    wait_for(lambda: len(e2e_cluster.access.kubectl(
        "get", "endpointslices", "-n", namespace, "-l", "kubernetes.io/service-name=steady",
        "-o", "jsonpath={.items[*].endpoints[*].addresses[0]}").stdout.split()) == 2,
             timeout=120, interval=1, what="both replicas behind the Service")
    victim = pods(e2e_cluster.access, namespace, selector)[0]["metadata"]["name"]
    load = client.start_load(v1_predict_url("steady", namespace), concurrency=CONCURRENCY,
                             max_seconds=LOAD_SECONDS)
    try:
        time.sleep(8)  # steady traffic on both pods first
        e2e_cluster.access.kubectl("delete", "pod", victim, "-n", namespace, "--wait=true",
                                   "--timeout=90s", timeout=120)
        time.sleep(8)  # and after: the ReplicaSet's replacement joins
    finally:
        result = load.stop()
    failed = result["requests"] - result["codes"].get(200, 0)
    record_property("requests", result["requests"])
    record_property("failed", failed)
    print(f"\npod kill under traffic: {result['requests']} requests in {result['seconds']} s, "
          f"{failed} failed (bound: {CONCURRENCY} in flight); errors: {result['errors'][:5]}")
    assert result["requests"] > 50, result
    assert failed <= CONCURRENCY, result
