"""Rollouts with real pods: a version with a bad artifact checksum never serves while the old
one keeps answering, and the Model says why; a version whose model fails for some inputs is
rolled back automatically on the error rate the operator scrapes from the pods themselves,
with traffic flowing through the Service the whole time; deleting the Model removes its pods.
Artifacts travel in ConfigMaps (the `artifacts` fixture)."""

from __future__ import annotations

import time

from modelops import contract
from tests.cluster.support import wait_for
from tests.e2e.support import (apply, artifact_configmap, deploy_v1, model_manifest, pods,
                               sha256_hex, v1_predict_url, wait_serving)

# Fast analysis so a rollback decision takes seconds (the operator's tick is 5 s in deploy/).
FAST_ROLLBACK = {"errorRateThreshold": 0.05, "window": "20s", "interval": "2s",
                 "consecutiveBreaches": 2, "minRequests": 10, "bakeWindow": "10m"}


def test_bad_checksum_never_serves_and_the_old_version_keeps_answering(
        e2e_cluster, namespace, artifacts, client):
    v1 = deploy_v1(e2e_cluster, namespace, artifacts, "guarded")
    api = e2e_cluster.api()
    good_revision = api.service_revision(namespace, "guarded")
    v2 = model_manifest("guarded", "2", "configMap://artifacts/flaky.joblib", "0" * 64)
    apply(e2e_cluster.access, namespace, v2)
    wait_for(lambda: api.condition(namespace, "guarded", "Stalled") == ("True", "ChecksumMismatch"),
             timeout=240, interval=1, what="Stalled=ChecksumMismatch")
    stalled = next(c for c in api.model(namespace, "guarded")["status"]["conditions"]
                   if c["type"] == "Stalled")
    assert "sha256" in stalled["message"], stalled
    assert api.service_revision(namespace, "guarded") == good_revision
    status, body = client.predict(v1_predict_url("guarded", namespace),
                                  {"instances": [[5.1, 3.5, 1.4, 0.2]]})
    assert status == 200 and body["predictions"] == [0], body
    v2_pods = pods(e2e_cluster.access, namespace, f"{contract.LABEL_VERSION}=2")
    assert v2_pods and not any(_ready(p) for p in v2_pods)
    assert v1["spec"]["version"] == api.model(namespace, "guarded")["status"]["servingVersion"]


def test_failing_version_is_rolled_back_on_scraped_error_rate(
        e2e_cluster, namespace, artifacts, client, record_property):
    deploy_v1(e2e_cluster, namespace, artifacts, "flaky", rollback=FAST_ROLLBACK)
    api = e2e_cluster.api()
    good_revision = api.service_revision(namespace, "flaky")
    url = v1_predict_url("flaky", namespace)
    load = client.start_load(url, concurrency=2, max_seconds=300, bad_share=0.3)
    try:
        v2 = model_manifest("flaky", "2", "configMap://artifacts/flaky.joblib",
                            sha256_hex(artifacts["flaky.joblib"]), rollback=FAST_ROLLBACK)
        apply(e2e_cluster.access, namespace, v2)
        wait_for(lambda: api.service_revision(namespace, "flaky") not in (None, good_revision),
                 timeout=240, interval=0.5, what="v2 serving")
        v2_serving_at = time.monotonic()
        wait_for(lambda: api.condition(namespace, "flaky", "Stalled") == ("True", "RolledBack"),
                 timeout=240, interval=1, what="Stalled=RolledBack")
        to_rollback = round(time.monotonic() - v2_serving_at, 1)
        record_property("seconds_to_rollback", to_rollback)
        print(f"\nrolled back {to_rollback} s after v2 started serving")
    finally:
        during = load.stop()
    status = api.model(namespace, "flaky")["status"]
    assert status["servingVersion"] == "1" and status["rollback"]["fromVersion"] == "2"
    assert status["rollback"]["errorRate"] > FAST_ROLLBACK["errorRateThreshold"]
    assert api.service_revision(namespace, "flaky") == good_revision
    assert during["codes"].get(500, 0) > 0, during  # v2 really failed for the negative rows
    # The Service switched at once; kube-proxy follows the EndpointSlices a moment later, and
    # the rolled-back version is scaled to zero: once its pods are gone nothing can reach it.
    drained_from = time.monotonic()
    wait_for(lambda: not pods(e2e_cluster.access, namespace,
                              f"{contract.LABEL_MODEL}=flaky,{contract.LABEL_VERSION}=2"),
             timeout=120, interval=0.5, what="v2's pods to drain")
    record_property("seconds_to_drain_v2", round(time.monotonic() - drained_from, 1))
    load = client.start_load(url, concurrency=2, max_seconds=30, bad_share=0.3)
    time.sleep(8)
    after = load.stop()
    # v1 answers every row, negative ones too; only v2's pods going away may drop a connection
    # that was already routed to them (at most one per client thread).
    assert 500 not in after["codes"] and after["codes"].get(200, 0) > 50, after
    assert after["requests"] - after["codes"][200] <= 2, after
    assert ("Warning", "RolledBack") in api.events(namespace, "flaky")


def test_bad_version_applied_while_the_previous_one_bakes_is_rolled_back_under_load(
        e2e_cluster, namespace, artifacts, client, record_property):
    """Issue 10's report: v1 serving inside its bake window (10 min), v2 applied and breaking.
    v1 stays warm, so the operator rolls back to it; measured from the client's first 500 to
    its last one, with the share of failed requests."""
    apply(e2e_cluster.access, namespace, artifact_configmap("artifacts", artifacts))
    apply(e2e_cluster.access, namespace, model_manifest(
        "baking", "1", "configMap://artifacts/good.joblib", sha256_hex(artifacts["good.joblib"]),
        rollback=FAST_ROLLBACK))
    api = e2e_cluster.api()
    wait_serving(e2e_cluster, client, namespace, "baking", reason="Baking")
    good_revision = api.service_revision(namespace, "baking")
    load = client.start_load(v1_predict_url("baking", namespace), concurrency=2,
                             max_seconds=300, bad_share=0.3)
    try:
        time.sleep(3)
        apply(e2e_cluster.access, namespace, model_manifest(
            "baking", "2", "configMap://artifacts/flaky.joblib",
            sha256_hex(artifacts["flaky.joblib"]), rollback=FAST_ROLLBACK))
        wait_for(lambda: api.condition(namespace, "baking", "Stalled") == ("True", "RolledBack"),
                 timeout=240, interval=0.5, what="Stalled=RolledBack")
        time.sleep(5)
    finally:
        during = load.stop()
    status = api.model(namespace, "baking")["status"]
    assert status["servingVersion"] == "1" and status["rollback"]["fromVersion"] == "2"
    assert api.service_revision(namespace, "baking") == good_revision
    failures = [e for e in during["errors"] if e[1] == 500]
    assert failures, during
    span = round(failures[-1][0] - failures[0][0], 1)
    share = during["codes"].get(500, 0) / during["requests"]
    record_property("seconds_first_to_last_500", span)
    record_property("failed_share", round(share, 4))
    print(f"\nv2 during v1's bake: 500s for {span} s (first to last), {share:.2%} of "
          f"{during['requests']} requests failed")
    assert span < 60, span


def test_deleting_the_model_removes_its_pods(e2e_cluster, namespace, artifacts):
    deploy_v1(e2e_cluster, namespace, artifacts, "doomed", replicas=2)
    selector = f"{contract.LABEL_MODEL}=doomed"
    assert len(pods(e2e_cluster.access, namespace, selector)) == 2
    e2e_cluster.access.kubectl("delete", f"{contract.MODEL_PLURAL}.{contract.API_GROUP}/doomed",
                               "-n", namespace, "--wait=true", "--timeout=120s", timeout=150)
    wait_for(lambda: not pods(e2e_cluster.access, namespace, selector), timeout=120, interval=1,
             what="the Model's pods to be gone")
    leftovers = e2e_cluster.access.kubectl("get", "deployments,services", "-n", namespace,
                                           "-l", selector, "-o", "name").stdout.split()
    assert leftovers == []


def _ready(pod: dict) -> bool:
    return any(c["type"] == "Ready" and c["status"] == "True"
               for c in pod.get("status", {}).get("conditions", []))
