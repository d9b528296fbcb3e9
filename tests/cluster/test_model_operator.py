"""The operator, as its own process, against the real control plane: what it creates for a
Model, how the status and Events follow the rollout, drift repair, deletion and idempotence."""

from __future__ import annotations

import time


from modelops import contract
from modelops.operator.builders import build_deployment, deployment_name
from modelops.operator.spec import parse_model
from tests.cluster.support import Cluster, wait_for
from tests.factories import SHA_A, SHA_B, model_spec

# No traffic reaches these Models: a version is promoted at its bake's end without evidence
# (holding for evidence, the default, is tested in tests/unit/operator/test_rollout.py).
QUIET_ROLLBACK = {"bakeWindow": "3s", "interval": "10m", "window": "10m", "onBakeTimeout": "Promote"}


def _model(name: str, **spec) -> dict:
    spec.setdefault("rollback", QUIET_ROLLBACK)
    return {"apiVersion": contract.API_GROUP_VERSION, "kind": contract.MODEL_KIND,
            "metadata": {"name": name}, "spec": model_spec(**spec)}


def _revision(**spec) -> str:
    spec.setdefault("rollback", QUIET_ROLLBACK)
    return parse_model(model_spec(**spec)).revision


def _serve(cluster: Cluster, ns: str, name: str, revision: str) -> None:
    wait_for(lambda: revision in cluster.deployments(ns, name), what="the Deployment")
    wait_for(lambda: cluster.mark_pods_ready(ns, name, revision) == 2, what="2 pods to exist")


def _promote_v1_then_apply_v2(cluster: Cluster, namespace: str) -> tuple[str, str]:
    """iris v1 serving and promoted, then spec.version 2 applied and its Deployment made."""
    cluster.create(namespace, _model("iris"))
    v1, v2 = _revision(), _revision(version="2", sha256=SHA_B)
    _serve(cluster, namespace, "iris", v1)
    wait_for(lambda: cluster.condition(namespace, "iris") == ("True", "Serving"), what="v1")
    cluster.patch_spec(namespace, "iris", {"version": "2", "artifact": {"sha256": SHA_B}})
    wait_for(lambda: v2 in cluster.deployments(namespace, "iris"), what="v2 Deployment")
    return v1, v2


def test_model_gets_its_deployment_service_and_status(cluster, namespace):
    cluster.create(namespace, _model("iris"))
    revision = _revision()
    deployments = wait_for(lambda: cluster.deployments(namespace, "iris"), what="a Deployment")
    deployment = cluster.apps.api_client.sanitize_for_serialization(deployments[revision])
    expected = build_deployment("iris", parse_model(model_spec(rollback=QUIET_ROLLBACK)),
                                image=contract.DEFAULT_SERVING_IMAGE)
    assert deployment["metadata"]["name"] == deployment_name("iris", revision)
    template = deployment["spec"]["template"]
    container = template["spec"]["containers"][0]
    assert container["env"] == expected["spec"]["template"]["spec"]["containers"][0]["env"]
    assert container["command"] == list(contract.SERVING_COMMAND)
    assert template["metadata"]["labels"] == expected["spec"]["template"]["metadata"]["labels"]
    owner = deployment["metadata"]["ownerReferences"][0]
    model = cluster.model(namespace, "iris")
    assert (owner["kind"], owner["name"], owner["uid"], owner["controller"]) == \
        ("Model", "iris", model["metadata"]["uid"], True)
    assert wait_for(lambda: cluster.service_revision(namespace, "iris")) == revision
    status = wait_for(lambda: cluster.model(namespace, "iris").get("status", {}).get(
        "observedGeneration") and cluster.model(namespace, "iris")["status"])
    assert status["observedGeneration"] == 1 and status["desiredVersion"] == "1"
    assert status["url"] == f"http://iris.{namespace}.svc.cluster.local/v2/models/iris/infer"
    assert cluster.condition(namespace, "iris") == ("False", "RollingOut")
    assert "kopf" not in str(status), "handler results must not leak into status"


def test_ready_pods_make_it_ready_then_promoted(cluster, namespace):
    cluster.create(namespace, _model("iris"))
    _serve(cluster, namespace, "iris", _revision())
    wait_for(lambda: cluster.condition(namespace, "iris") == ("True", "Baking"), what="Baking")
    wait_for(lambda: cluster.condition(namespace, "iris") == ("True", "Serving"), what="Serving")
    status = cluster.model(namespace, "iris")["status"]
    assert status["lastGoodVersion"] == "1"
    wanted = {"RollingOut", "RolledOut", "Promoted"}
    # kopf posts Events in the background, a moment after the status write
    wait_for(lambda: wanted <= {reason for _, reason in cluster.events(namespace, "iris")},
             what=f"Events {wanted}")
    first_pass = [e.message for e in cluster.core.list_namespaced_event(
        namespace, field_selector="involvedObject.name=iris,reason=RollingOut").items]
    assert ("Deploying first version 1. Created Service iris, Deployment "
            f"{deployment_name('iris', _revision())}") in first_pass, "one Event for the pass"


def test_new_version_rolls_out_beside_the_old_one(cluster, namespace):
    v1, v2 = _promote_v1_then_apply_v2(cluster, namespace)
    assert cluster.service_revision(namespace, "iris") == v1, "v1 serves until v2 is ready"
    assert cluster.condition(namespace, "iris") == ("False", "RollingOut")
    _serve(cluster, namespace, "iris", v2)
    wait_for(lambda: cluster.service_revision(namespace, "iris") == v2, what="the switch")
    wait_for(lambda: cluster.model(namespace, "iris")["status"].get("lastGoodVersion") == "2",
             what="v2 promoted")
    wait_for(lambda: cluster.deployments(namespace, "iris")[v1].spec.replicas == 0,
             what="v1 scaled down after promotion")
    assert cluster.model(namespace, "iris")["status"]["observedGeneration"] == 2


def test_nothing_changed_means_no_writes(cluster, namespace):
    cluster.create(namespace, _model("iris"))
    _serve(cluster, namespace, "iris", _revision())
    wait_for(lambda: cluster.condition(namespace, "iris") == ("True", "Serving"), what="Serving")

    def versions():
        d = cluster.deployments(namespace, "iris")[_revision()]
        return (cluster.model(namespace, "iris")["metadata"]["resourceVersion"],
                d.metadata.resource_version,
                cluster.core.read_namespaced_service("iris", namespace).metadata.resource_version)

    before = versions()
    time.sleep(4)  # four operator ticks
    assert versions() == before


def test_drift_is_repaired(cluster, namespace):
    cluster.create(namespace, _model("iris"))
    revision = _revision()
    wait_for(lambda: cluster.service_revision(namespace, "iris") == revision, what="Service")
    cluster.core.patch_namespaced_service("iris", namespace, {"spec": {"selector": {
        contract.LABEL_REVISION: "edited-by-hand"}}})
    wait_for(lambda: cluster.service_revision(namespace, "iris") == revision, what="selector back")
    name = deployment_name("iris", revision)
    cluster.apps.patch_namespaced_deployment(name, namespace, {"spec": {"replicas": 5}})
    wait_for(lambda: cluster.deployments(namespace, "iris")[revision].spec.replicas == 2,
             what="replicas restored")
    cluster.apps.delete_namespaced_deployment(name, namespace)
    wait_for(lambda: (d := cluster.deployments(namespace, "iris").get(revision)) is not None
             and d.metadata.deletion_timestamp is None, what="Deployment recreated")


def test_deleting_the_model_leaves_nothing_behind(cluster, namespace):
    cluster.create(namespace, _model("iris"))
    wait_for(lambda: cluster.deployments(namespace, "iris"), what="a Deployment")
    wait_for(lambda: cluster.service_revision(namespace, "iris"), what="the Service")
    cluster.custom.delete_namespaced_custom_object(contract.API_GROUP, contract.API_VERSION,
                                                   namespace, contract.MODEL_PLURAL, "iris")
    wait_for(lambda: not cluster.deployments(namespace, "iris"), timeout=60, what="GC")
    wait_for(lambda: cluster.service_revision(namespace, "iris") is None, what="Service gone")
    wait_for(lambda: not cluster.core.list_namespaced_pod(namespace).items, what="pods gone")


def test_checksum_mismatch_is_shown_with_the_containers_reason(cluster, namespace):
    v1, v2 = _promote_v1_then_apply_v2(cluster, namespace)
    message = f"ChecksumMismatch: artifact sha256 is {SHA_A[:12]}... but spec says {SHA_B[:12]}..."
    wait_for(lambda: cluster.fail_pods(namespace, "iris", v2, message) == 2, what="v2 pods")
    wait_for(lambda: cluster.condition(namespace, "iris", "Stalled") == ("True", "ChecksumMismatch"),
             what="Stalled=ChecksumMismatch")
    stalled = [c for c in cluster.model(namespace, "iris")["status"]["conditions"]
               if c["type"] == "Stalled"][0]
    assert "artifact sha256 is" in stalled["message"]
    assert cluster.service_revision(namespace, "iris") == v1
    wait_for(lambda: ("Warning", "ChecksumMismatch") in cluster.events(namespace, "iris"),
             what="the Warning Event")


def test_second_model_with_invalid_spec_reports_it(cluster, namespace):
    body = _model("bad")
    body["spec"]["artifact"] = {"uri": "https://example.invalid/model.joblib"}  # CRD may refuse
    try:
        cluster.create(namespace, body)
    except Exception as refused:  # the API server refused it: that is the better outcome
        assert "sha256" in str(refused)
        return
    wait_for(lambda: cluster.condition(namespace, "bad") == ("False", "InvalidSpec"),
             what="InvalidSpec")
