"""Feedback through the Service on a real node (issue 13): a 2-replica, 2-worker classifier,
each prediction's true label sent back with its signed token on a fresh connection, so the
label usually reaches another pod (or another worker) than the one that predicted. Every pod
scores any token of its Model; labels held back until every pod that made the predictions was
replaced are still scored."""

from __future__ import annotations

from modelops import contract
from tests.cluster.support import wait_for
from tests.e2e.support import (apply, artifact_configmap, model_manifest, pods, service_url,
                               sha256_hex, wait_serving)

NAME = "graded"
PREDICTIONS = 2000
KEPT = 60


def test_feedback_through_the_service_with_replicas_and_workers_and_after_pod_replacement(
        e2e_cluster, namespace, artifacts, client, record_property):
    access, api = e2e_cluster.access, e2e_cluster.api()
    apply(access, namespace, artifact_configmap("artifacts", artifacts))
    apply(access, namespace, model_manifest(
        NAME, "1", "configMap://artifacts/good.joblib", sha256_hex(artifacts["good.joblib"]),
        replicas=2, serving={"workers": 2}))
    wait_serving(e2e_cluster, client, namespace, NAME)
    selector = f"{contract.LABEL_MODEL}={NAME}"
    before = {p["metadata"]["name"] for p in pods(access, namespace, selector)}
    assert len(before) == 2
    base = service_url(NAME, namespace, "")

    result = client.feedback(base, NAME, count=PREDICTIONS, concurrency=4, keep=KEPT)
    sent = sum(result["feedback"].values())
    accepted = result["feedback"].get(200, 0) / max(sent, 1)
    record_property("feedback_accepted_share", round(accepted, 5))
    print(f"\nfeedback through the Service: {result['feedback'].get(200, 0)} of {sent} accepted "
          f"({accepted:.3%}); infer codes {result['infer']}; errors {result['errors'][:3]}")
    assert result["infer"] == {200: PREDICTIONS}, result["errors"][:5]
    assert sent == PREDICTIONS - KEPT and accepted >= 0.999, result["errors"][:5]

    access.kubectl("delete", "pods", "-n", namespace, "-l", selector, "--wait=true",
                   "--timeout=120s", timeout=150)
    wait_for(lambda: _ready_pods(access, namespace, selector) - before
             and len(_ready_pods(access, namespace, selector)) == 2,
             timeout=180, interval=1, what="two new pods ready")
    assert not _ready_pods(access, namespace, selector) & before
    late = client.score(base, NAME, result["kept"])
    print(f"labels sent after both pods were replaced: {late['feedback']}")
    assert late["feedback"] == {200: KEPT}, late["errors"][:5]


def _ready_pods(access, namespace: str, selector: str) -> set[str]:
    return {p["metadata"]["name"] for p in pods(access, namespace, selector)
            if not p["metadata"].get("deletionTimestamp") and any(
                c["type"] == "Ready" and c["status"] == "True"
                for c in p.get("status", {}).get("conditions", []))}
