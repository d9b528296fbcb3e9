"""Artifacts from a real S3-compatible store and a real MLflow registry, served on the real node
(issue 14). moto's S3 server (IAM authentication on) and `mlflow server` (sqlite, proxied
artifacts) run on this host from the test-servers venv, bound to the cluster's host address (on the dev
node its bridge address, which the devcluster's guard chain drops from any other interface; on
kind the Docker network's gateway). The operator resolves MLflow aliases from its pod; the init
containers download with credentials from a Secret."""

from __future__ import annotations

import pytest

from modelops import contract
from tests.cluster.support import wait_for
from tests.e2e.support import apply, sha256_hex, v1_predict_url, wait_serving
from tests.unit.serving import stores

ROW = [[5.1, 3.5, 1.4, 0.2]]


@pytest.fixture(scope="module")
def venv():
    return stores.servers_venv()


@pytest.fixture(scope="module")
def s3(venv, e2e_cluster, tmp_path_factory):
    process, store = stores.start_s3(venv, tmp_path_factory.mktemp("s3") / "moto.log",
                                     host=e2e_cluster.host_address)
    yield store
    stores.stop(process)


@pytest.fixture(scope="module")
def registry(venv, e2e_cluster, artifacts, tmp_path_factory):
    work = tmp_path_factory.mktemp("mlflow")
    paths = []
    for name in ("good.joblib", "flaky.joblib"):
        (work / name).write_bytes(artifacts[name])
        paths.append(work / name)
    process, server = stores.start_mlflow(venv, work, host=e2e_cluster.host_address)
    try:
        server.versions = server.log("iris", "cloudpickle", *paths)
        server.sha256 = [stores.model_file_sha256(server.uri, "iris", v, work / f"v{v}")
                         for v in server.versions]
        yield server
    finally:
        stores.stop(process)


def _model(name: str, version: str, uri: str, sha256: str, **artifact) -> dict:
    return {"apiVersion": contract.API_GROUP_VERSION, "kind": contract.MODEL_KIND,
            "metadata": {"name": name},
            "spec": {"version": version, "replicas": 1,
                     "resources": {"requests": {"cpu": "50m", "memory": "128Mi"}},
                     "rollback": {"bakeWindow": "5s"},
                     "artifact": {"uri": uri, "sha256": sha256, "format": "joblib", **artifact}}}


def _secret(name: str, key: str, secret: str) -> dict:
    return {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": name},
            "stringData": {"AWS_ACCESS_KEY_ID": key, "AWS_SECRET_ACCESS_KEY": secret}}


def _predict(client, namespace: str, name: str) -> dict:
    """The v1 answer through the Service (after wait_serving)."""
    status, body = client.predict(v1_predict_url(name, namespace), {"instances": ROW})
    assert status == 200, (name, status, body)
    return body


def test_s3_artifact_with_credentials_from_a_secret_serves_and_wrong_keys_are_access_denied(
        e2e_cluster, namespace, artifacts, client, s3, tmp_path):
    access, api = e2e_cluster.access, e2e_cluster.api()
    (tmp_path / "model.joblib").write_bytes(artifacts["good.joblib"])
    s3.put("models", "iris/1/model.joblib", tmp_path / "model.joblib")
    store = {"endpoint": s3.endpoint, "credentialsSecret": {"name": "store-keys"}}
    apply(access, namespace, _secret("store-keys", s3.key, s3.secret),
          _secret("wrong-keys", s3.key, "not-the-secret"),
          _model("from-s3", "1", "s3://models/iris/1/model.joblib",
                 sha256_hex(artifacts["good.joblib"]), s3=store),
          _model("denied", "1", "s3://models/iris/1/model.joblib",
                 sha256_hex(artifacts["good.joblib"]),
                 s3={**store, "credentialsSecret": {"name": "wrong-keys"}}))
    wait_serving(e2e_cluster, client, namespace, "from-s3")
    body = _predict(client, namespace, "from-s3")
    assert body["predictions"] == [0], body
    wait_for(lambda: api.condition(namespace, "denied", "Stalled") == ("True", "AccessDenied"),
             timeout=240, interval=1, what="Stalled=AccessDenied")
    stalled = next(c for c in api.model(namespace, "denied")["status"]["conditions"]
                   if c["type"] == "Stalled")
    assert "SignatureDoesNotMatch" in stalled["message"], stalled
    assert "not-the-secret" not in str(api.model(namespace, "denied"))


def test_mlflow_model_by_version_and_by_alias_and_a_moved_alias_is_reported(
        e2e_cluster, namespace, client, registry):
    access, api = e2e_cluster.access, e2e_cluster.api()
    first, second = registry.versions
    registry.alias("iris", "champion", first)
    mlflow = {"trackingUri": registry.uri}
    apply(access, namespace,
          _model("by-version", first, f"models:/iris/{first}", registry.sha256[0], mlflow=mlflow),
          _model("by-alias", "champion", "models:/iris@champion", registry.sha256[0],
                 mlflow=mlflow))
    for name in ("by-version", "by-alias"):
        wait_serving(e2e_cluster, client, namespace, name)
        body = _predict(client, namespace, name)
        assert body["predictions"] == [0], (name, body)
    pinned = api.model(namespace, "by-alias")["status"]["mlflow"]
    assert (pinned["alias"], pinned["version"]) == ("iris@champion", first), pinned
    registry.alias("iris", "champion", second)
    wait_for(lambda: (api.model(namespace, "by-alias")["status"].get("mlflow") or {})
             .get("aliasVersion") == second, timeout=120, interval=1, what="the moved alias")
    status = api.model(namespace, "by-alias")["status"]
    assert status["mlflow"]["version"] == first  # Manual (the default): reported, not rolled out
    assert (api.condition(namespace, "by-alias", "Ready") or ("",))[0] == "True"
