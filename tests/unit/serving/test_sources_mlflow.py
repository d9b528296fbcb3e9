"""models:/ artifacts: the pure parts, then a real `mlflow server` (sqlite, 127.0.0.1) with models
logged by mlflow.sklearn.log_model; version and alias resolution; alias moves via the operator."""

from __future__ import annotations

import sklearn
import pytest
import stores

from modelops.operator import mlflow_alias
from modelops.serving.app import load_from_settings
from modelops.serving.artifact import fetch, file_sha256
from modelops.serving.failures import StartupFailure
from modelops.serving.settings import ServingSettings
from modelops.serving.sources.mlflow import (
    ModelRef, api_error, check_sklearn_version, proxied_path, sklearn_flavor,
)

MLMODEL = """
flavors:
  python_function: {loader_module: mlflow.sklearn, model_path: model.pkl}
  sklearn: {pickled_model: %s, serialization_format: %s, sklearn_version: 1.9.1}
"""


# --- pure ----------------------------------------------------------------------------------------

@pytest.mark.parametrize("uri, ref", [
    ("models:/iris/3", ModelRef("iris", version="3")),
    ("models:/iris@champion", ModelRef("iris", alias="champion")),
])
def test_model_refs(uri, ref):
    assert ModelRef.parse(uri) == ref and ref.uri() == uri


@pytest.mark.parametrize("uri", ["models:/iris", "models:/iris/latest", "models:/a/b/1",
                                 "models:/iris@", "models://iris/1"])
def test_bad_model_refs(uri):
    with pytest.raises(StartupFailure, match="InvalidSettings"):
        ModelRef.parse(uri)


@pytest.mark.parametrize("serialization, fmt", [("pickle", "joblib"), ("cloudpickle", "joblib"),
                                                ("skops", "skops")])
def test_flavor_formats(serialization, fmt):
    flavor = sklearn_flavor(MLMODEL % ("model.pkl", serialization))
    assert (flavor.format, flavor.model_file, flavor.sklearn_version) == (fmt, "model.pkl", "1.9.1")


@pytest.mark.parametrize("text, said", [
    ("flavors: {python_function: {}}", "no sklearn flavor (flavors: python_function)"),
    (MLMODEL % ("model.pkl", "onnx"), "serialization_format 'onnx'"),
    (MLMODEL % ("../../etc/passwd", "pickle"), "not a relative path"),
    (MLMODEL % ("/abs", "pickle"), "not a relative path"),
    ("flavors: [", "not valid YAML"),
])
def test_unusable_mlmodels(text, said):
    with pytest.raises(StartupFailure) as failed:
        sklearn_flavor(text)
    assert failed.value.reason == "UnsupportedFormat" and said in failed.value.message


def test_version_policy_names_both_versions():
    with pytest.raises(StartupFailure) as failed:
        check_sklearn_version("1.5.2", "1.9.1", "refuse")
    assert failed.value.reason == "SklearnVersionMismatch"
    assert "1.5.2" in failed.value.message and "1.9.1" in failed.value.message
    check_sklearn_version("1.5.2", "1.9.1", "warn")
    check_sklearn_version("1.9.1", "1.9.1", "refuse")


def test_only_proxied_artifact_locations_are_downloaded():
    assert proxied_path("mlflow-artifacts:/0/models/m-1/artifacts") == "0/models/m-1/artifacts"
    assert proxied_path("mlflow-artifacts://host:5000/1/a b") == "1/a%20b"
    with pytest.raises(StartupFailure, match="artifact proxy"):
        proxied_path("/var/mlruns/0/models/m-1/artifacts")


@pytest.mark.parametrize("status, body, reason", [
    (404, {"error_code": "RESOURCE_DOES_NOT_EXIST", "message": "nope"}, "ArtifactNotFound"),
    (403, {"error_code": "PERMISSION_DENIED"}, "AccessDenied"),
    (401, {}, "AccessDenied"),
    (400, {"error_code": "INVALID_PARAMETER_VALUE", "message": "alias x not found"}, "ArtifactNotFound"),
    (400, {"error_code": "INVALID_PARAMETER_VALUE", "message": "bad name"}, "DownloadFailed"),
    (500, {"error_code": "INTERNAL_ERROR", "message": "db"}, "DownloadFailed"),
])
def test_server_errors_map_to_reasons(status, body, reason):
    assert api_error(status, body, "models:/m/1").reason == reason


# --- a real tracking server ------------------------------------------------------------------------

@pytest.fixture(scope="module")
def registry(tmp_path_factory, artifacts):
    workdir = tmp_path_factory.mktemp("mlflow")
    process, server = stores.start_mlflow(stores.servers_venv(), workdir)
    try:
        server.versions = server.log("iris", "cloudpickle", artifacts.iris.path, artifacts.forest.path)
        server.alias("iris", "champion", server.versions[0])
        yield server
    finally:
        stores.stop(process)


def settings(tmp_path, uri, sha256="", **extra):
    return ServingSettings(model_name="iris", artifact_uri=uri, artifact_sha256=sha256,
                           artifact_dir=tmp_path / "artifact", download_timeout_seconds=10, **extra)


def test_serve_a_registered_version(registry, tmp_path):
    s = settings(tmp_path, f"models:/iris/{registry.versions[0]}")
    path = fetch(s, environ={"MLFLOW_TRACKING_URI": registry.uri})
    assert path.name == "model.pkl" and (path.parent / "MLmodel").is_file()
    model = load_from_settings(s)
    assert model.predict([[5.1, 3.5, 1.4, 0.2]], "predict") == [0]
    assert model.format == "joblib"


def test_serve_by_alias_and_pin_the_model_file(registry, tmp_path):
    first = fetch(settings(tmp_path / "a", "models:/iris@champion"),
                  environ={"MLFLOW_TRACKING_URI": registry.uri})
    pin = file_sha256(first)
    s = settings(tmp_path / "b", "models:/iris@champion", sha256=pin)
    assert file_sha256(fetch(s, environ={"MLFLOW_TRACKING_URI": registry.uri})) == pin
    with pytest.raises(StartupFailure) as failed:
        fetch(settings(tmp_path / "c", f"models:/iris/{registry.versions[1]}", sha256=pin),
              environ={"MLFLOW_TRACKING_URI": registry.uri})
    assert failed.value.reason == "ChecksumMismatch" and "model.pkl" in failed.value.message


def test_model_logged_with_another_sklearn_is_refused_naming_both(registry, tmp_path):
    s = settings(tmp_path, f"models:/iris/{registry.versions[0]}")
    path = fetch(s, environ={"MLFLOW_TRACKING_URI": registry.uri})
    mlmodel = path.parent / "MLmodel"
    mlmodel.write_text(mlmodel.read_text().replace(f"sklearn_version: {sklearn.__version__}",
                                                   "sklearn_version: 1.5.2"))
    with pytest.raises(StartupFailure) as failed:
        fetch(s, environ={})  # the serving container re-checks the downloaded directory
    assert failed.value.reason == "SklearnVersionMismatch"
    assert "1.5.2" in failed.value.message and sklearn.__version__ in failed.value.message


@pytest.mark.parametrize("uri, reason", [("models:/iris/99", "ArtifactNotFound"),
                                         ("models:/nosuch@champion", "ArtifactNotFound"),
                                         ("models:/iris@nosuchalias", "ArtifactNotFound")])
def test_missing_versions_and_aliases(registry, tmp_path, uri, reason):
    with pytest.raises(StartupFailure) as failed:
        fetch(settings(tmp_path, uri), environ={"MLFLOW_TRACKING_URI": registry.uri})
    assert failed.value.reason == reason, failed.value.line()
    assert "HTTP 4" in failed.value.message  # the server's own status, code and message


def test_size_limit_covers_the_whole_directory(registry, tmp_path):
    with pytest.raises(StartupFailure) as failed:
        fetch(settings(tmp_path, f"models:/iris/{registry.versions[1]}", download_max_bytes=2000),
              environ={"MLFLOW_TRACKING_URI": registry.uri})
    assert failed.value.reason == "DownloadFailed" and "MODELOPS_DOWNLOAD_MAX_BYTES" in failed.value.message
    assert not (tmp_path / "artifact" / "mlflow-model").exists()


def test_alias_move_is_reported_and_the_policy_decides(registry):
    uri = "models:/iris@challenger"
    v1, v2 = registry.versions
    registry.alias("iris", "challenger", v1)
    first = mlflow_alias.decide(uri, None, mlflow_alias.resolve_alias(uri, tracking_uri=registry.uri),
                                "Manual")
    assert first.serve_version == v1 and first.event[1] == "MlflowAliasResolved"
    assert mlflow_alias.pinned_uri(uri, first.serve_version) == f"models:/iris/{v1}"
    registry.alias("iris", "challenger", v2)
    now = mlflow_alias.resolve_alias(uri, tracking_uri=registry.uri)
    manual = mlflow_alias.decide(uri, first.status, now, "Manual")
    assert (manual.serve_version, manual.event[0], manual.event[1]) == (v1, "Warning", "MlflowAliasMoved")
    assert manual.condition["status"] == "True" and manual.status["aliasVersion"] == v2
    auto = mlflow_alias.decide(uri, first.status, now, "Auto")
    assert auto.serve_version == v2 and auto.status["version"] == v2
