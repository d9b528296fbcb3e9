"""models:/<name>@<alias> through the real operator: a real `mlflow server` (sqlite, 127.0.0.1,
from tools/testservers/venv.sh, built by the first run) with two registered versions of a model
logged by mlflow.sklearn.log_model. The operator resolves the alias, records status.mlflow and
gives the pods the pinned models:/<name>/<version>; a moved alias is reported and kept (Manual),
then rolled out (Auto); a server that is gone or an alias that does not exist is a condition,
never a crash, and a recorded version keeps serving."""

from __future__ import annotations

import pytest

from modelops import contract
from modelops.operator.mlflow_alias import pinned_spec
from modelops.operator.spec import parse_model
from tests.cluster.support import Cluster, OperatorProcess, deployment_env, wait_for
from tests.ports import free_port
from tests.unit.serving import stores
from tests.unit.serving.serving_support import dump, train_forest, train_iris

QUIET_ROLLBACK = {"bakeWindow": "2s", "interval": "10m", "window": "10m", "onBakeTimeout": "Promote"}


@pytest.fixture(scope="module")
def registry(tmp_path_factory):
    work = tmp_path_factory.mktemp("mlflow")
    first = dump(train_iris(), work / "iris.joblib")
    second = dump(train_forest(), work / "forest.joblib")
    process, server = stores.start_mlflow(stores.servers_venv(), work)
    try:
        server.versions = server.log("iris", "cloudpickle", first.path, second.path)
        server.alias("iris", "champion", server.versions[0])
        server.sha256 = [stores.model_file_sha256(server.uri, "iris", v, work / f"v{v}")
                         for v in server.versions]
        server.process = process
        yield server
    finally:
        stores.stop(process)


@pytest.fixture(scope="module")
def operator(control_plane, crds, registry, tmp_path_factory):
    """The operator with the registry as its MLFLOW_TRACKING_URI and a 1 s alias TTL."""
    process = OperatorProcess(control_plane.kubeconfig,
                              tmp_path_factory.mktemp("operator") / "operator.log",
                              mlflow_alias_ttl_seconds="1")
    process.env[contract.ENV_MLFLOW_TRACKING_URI] = registry.uri
    process.start()
    yield process
    process.stop()
    assert "Traceback" not in process.log(), process.log()[-4000:]


def _model(name: str, uri: str, sha256: str, **artifact) -> dict:
    return {"apiVersion": contract.API_GROUP_VERSION, "kind": contract.MODEL_KIND,
            "metadata": {"name": name},
            "spec": {"version": "1", "replicas": 1, "rollback": QUIET_ROLLBACK,
                     "artifact": {"uri": uri, "sha256": sha256, **artifact}}}


def _revision(body: dict, version: str) -> str:
    return pinned_spec(parse_model(body["spec"]), version).revision


def _mlflow(cluster: Cluster, ns: str, name: str) -> dict:
    return (cluster.model(ns, name).get("status") or {}).get("mlflow") or {}


def _serving(cluster: Cluster, ns: str, name: str, revision: str) -> None:
    wait_for(lambda: revision in cluster.deployments(ns, name), what=f"Deployment {revision}")
    wait_for(lambda: cluster.mark_pods_ready(ns, name, revision) == 1, what="its pod")
    wait_for(lambda: cluster.service_revision(ns, name) == revision, timeout=60,
             what=f"the Service to select {revision}")


@pytest.mark.parametrize("name, uri, artifact, reason, stalled", [
    ("unknown", "models:/iris@nosuchalias", {}, "ArtifactNotFound", "True"),
    ("unreachable", "models:/iris@champion",
     {"mlflow": {"trackingUri": f"http://127.0.0.1:{free_port()}"}}, "DownloadFailed", "False"),
])
def test_an_alias_never_resolved_is_a_condition_and_no_deployment(cluster, namespace, registry,
                                                                   name, uri, artifact, reason,
                                                                   stalled):
    cluster.create(namespace, _model(name, uri, registry.sha256[0], **artifact))
    wait_for(lambda: cluster.condition(namespace, name) == ("False", "MlflowAliasUnresolved"),
             what="Ready=False MlflowAliasUnresolved")
    assert cluster.condition(namespace, name, "AliasResolved") == ("False", reason)
    assert cluster.condition(namespace, name, "Stalled")[0] == stalled
    assert cluster.deployments(namespace, name) == {}
    assert "mlflow" not in cluster.model(namespace, name)["status"]
    message = next(c["message"] for c in cluster.model(namespace, name)["status"]["conditions"]
                   if c["type"] == "Ready")
    assert uri in message and reason in message


# last: it stops the tracking server
def test_alias_is_pinned_reported_when_moved_and_rolled_out_on_auto(cluster, namespace, registry):
    v1, v2 = registry.versions
    body = _model("iris", "models:/iris@champion", registry.sha256[0])
    cluster.create(namespace, body)
    first, second = _revision(body, v1), _revision(body, v2)
    wait_for(lambda: _mlflow(cluster, namespace, "iris"), what="status.mlflow")
    assert _mlflow(cluster, namespace, "iris") == {
        "alias": "iris@champion", "version": v1, "aliasVersion": v1, "sha256": registry.sha256[0]}
    deployment = wait_for(lambda: cluster.deployments(namespace, "iris").get(first))
    assert deployment_env(deployment)[contract.ENV_ARTIFACT_URI] == f"models:/iris/{v1}"
    cluster.wait_for_events(namespace, "iris", ("Normal", "MlflowAliasResolved"))
    _serving(cluster, namespace, "iris", first)

    registry.alias("iris", "champion", v2)  # Manual (the default): reported, v1 kept
    wait_for(lambda: cluster.condition(namespace, "iris", "AliasMoved") == ("True", "MlflowAliasMoved"),
             what="AliasMoved=True")
    assert _mlflow(cluster, namespace, "iris")["version"] == v1
    assert _mlflow(cluster, namespace, "iris")["aliasVersion"] == v2
    cluster.wait_for_events(namespace, "iris", ("Warning", "MlflowAliasMoved"))
    assert set(cluster.deployments(namespace, "iris")) == {first}
    assert cluster.service_revision(namespace, "iris") == first

    cluster.custom.patch_namespaced_custom_object(  # Auto: the new version rolls out
        contract.API_GROUP, contract.API_VERSION, namespace, contract.MODEL_PLURAL, "iris",
        {"metadata": {"annotations": {contract.ANNOTATION_MLFLOW_ALIAS_ROLLOUT: "Auto"}}},
        _content_type="application/merge-patch+json")
    wait_for(lambda: _mlflow(cluster, namespace, "iris").get("version") == v2, what="v2 recorded")
    deployment = wait_for(lambda: cluster.deployments(namespace, "iris").get(second))
    assert deployment_env(deployment)[contract.ENV_ARTIFACT_URI] == f"models:/iris/{v2}"
    _serving(cluster, namespace, "iris", second)
    assert cluster.condition(namespace, "iris", "AliasMoved") == ("False", "RollingOut")
    assert cluster.model(namespace, "iris")["status"]["servingRevision"] == second

    registry.process.terminate()  # the tracking server goes away: v2 keeps serving, said so
    registry.process.wait(30)
    wait_for(lambda: cluster.condition(namespace, "iris", "AliasResolved") == ("False", "DownloadFailed"),
             what="AliasResolved=False")
    assert cluster.service_revision(namespace, "iris") == second
    assert set(cluster.deployments(namespace, "iris")) >= {second}
    cluster.wait_for_events(namespace, "iris", ("Warning", "MlflowAliasUnresolved"))
