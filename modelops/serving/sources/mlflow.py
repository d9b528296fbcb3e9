"""`models:/<name>/<version>` and `models:/<name>@<alias>`: a model from the MLflow registry.

The init container asks the tracking server (MLFLOW_TRACKING_URI, bearer token
MLFLOW_TRACKING_TOKEN) for the version's download location, downloads the model directory through
the server's artifact proxy into `<artifact dir>/mlflow-model/` (total size and per-read time
capped), reads its MLmodel file and serves the sklearn flavor's model file: pickle and cloudpickle
load as joblib, skops as skops. The sha256 pin applies to that file. A model logged with another
scikit-learn version fails with SklearnVersionMismatch naming both (or warns, per the policy),
before anything is deserialised. `ModelRef.parse`, `sklearn_flavor` are pure.
"""

from __future__ import annotations

import logging
import re
import shutil
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from urllib.parse import quote, urlsplit

import yaml

from modelops import contract as c
from modelops.serving.failures import (
    ACCESS_DENIED, ARTIFACT_NOT_FOUND, DOWNLOAD_FAILED, UNSUPPORTED_FORMAT, VERSION_MISMATCH,
    StartupFailure,
)
from modelops.serving.settings import ServingSettings, invalid

MODEL_DIR = "mlflow-model"
MAX_FILES = 1000
FORMATS = {"pickle": "joblib", "cloudpickle": "joblib", "skops": "skops"}
_REF = re.compile(r"^models:/(?P<name>[^/@]+)(?:/(?P<version>[0-9]+)|@(?P<alias>[A-Za-z0-9_-]+))$")

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ModelRef:
    name: str
    version: str = ""
    alias: str = ""

    @classmethod
    def parse(cls, uri: str) -> ModelRef:
        found = _REF.match(uri)
        if not found:
            raise invalid(f"{c.ENV_ARTIFACT_URI} {uri!r}: expected models:/<name>/<version> "
                          "or models:/<name>@<alias>")
        return cls(found["name"], found["version"] or "", found["alias"] or "")

    def uri(self) -> str:
        return f"models:/{self.name}/{self.version}" if self.version else f"models:/{self.name}@{self.alias}"


@dataclass(frozen=True)
class SklearnFlavor:
    model_file: str
    format: str
    """joblib | skops (what modelops.serving.model loads)."""
    sklearn_version: str


def sklearn_flavor(mlmodel_text: str) -> SklearnFlavor:
    """The sklearn flavor of an MLmodel file; UnsupportedFormat when there is none usable."""
    try:
        mlmodel = yaml.safe_load(mlmodel_text) or {}
    except yaml.YAMLError as error:
        raise StartupFailure(UNSUPPORTED_FORMAT, f"MLmodel is not valid YAML: {error}") from None
    flavor = (mlmodel.get("flavors") or {}).get("sklearn") if isinstance(mlmodel, dict) else None
    if not isinstance(flavor, dict):
        found = ", ".join(sorted((mlmodel.get("flavors") or {}))) if isinstance(mlmodel, dict) else ""
        raise StartupFailure(UNSUPPORTED_FORMAT, f"the MLflow model has no sklearn flavor "
                                                 f"(flavors: {found or 'none'})")
    serialization = str(flavor.get("serialization_format") or "cloudpickle")
    if serialization not in FORMATS:
        raise StartupFailure(UNSUPPORTED_FORMAT, f"sklearn serialization_format {serialization!r} "
                                                 f"is not one of {', '.join(FORMATS)}")
    model_file = PurePosixPath(str(flavor.get("pickled_model") or "model.pkl"))
    if model_file.is_absolute() or ".." in model_file.parts or not model_file.parts:
        raise StartupFailure(UNSUPPORTED_FORMAT, f"pickled_model {str(model_file)!r} is not a relative path")
    return SklearnFlavor(str(model_file), FORMATS[serialization], str(flavor.get("sklearn_version") or ""))


def check_sklearn_version(logged: str, installed: str, policy: str) -> None:
    if not logged or logged == installed:
        return
    message = f"model logged with scikit-learn {logged}, server has {installed}"
    if policy == "refuse":
        raise StartupFailure(VERSION_MISMATCH, message)
    log.warning("%s (%s=warn, serving anyway)", message, c.ENV_SKLEARN_VERSION_POLICY)


def model_file(artifact_dir: Path) -> Path:
    """Where the downloaded model's file is (reads the MLmodel the init container fetched)."""
    mlmodel = artifact_dir / MODEL_DIR / "MLmodel"
    try:
        text = mlmodel.read_text(encoding="utf-8")
    except OSError:
        raise StartupFailure(ARTIFACT_NOT_FOUND, f"no MLflow model at {mlmodel.parent}") from None
    return artifact_dir / MODEL_DIR / sklearn_flavor(text).model_file


def fetch_model(settings: ServingSettings, *, environ: Mapping[str, str], session=None) -> Path:
    """Download (or reuse) the model directory, check its flavor and pin; return the model file."""
    import sklearn

    from modelops.serving.artifact import check_sha256, file_sha256
    from modelops.serving.sources.mlflow_client import TrackingClient

    target = settings.artifact_dir / MODEL_DIR
    if not (target / "MLmodel").is_file():
        client = TrackingClient.from_env(environ, timeout=settings.download_timeout_seconds,
                                         session=session)
        ref = ModelRef.parse(settings.artifact_uri)
        version = client.resolve_version(ref)
        log.info("MLflow %s is version %s", ref.uri(), version)
        client.download_model(ref.name, version, target, max_bytes=settings.download_max_bytes)
    flavor = sklearn_flavor((target / "MLmodel").read_text(encoding="utf-8"))
    check_sklearn_version(flavor.sklearn_version, sklearn.__version__, settings.sklearn_version_policy)
    path = target / flavor.model_file
    if not path.is_file():
        raise StartupFailure(ARTIFACT_NOT_FOUND, f"the MLflow model has no {flavor.model_file}")
    check_sha256(file_sha256(path), settings.artifact_sha256, f"{settings.artifact_uri} {flavor.model_file}")
    return path


def replace_dir(partial: Path, target: Path) -> None:
    shutil.rmtree(target, ignore_errors=True)
    partial.replace(target)


def api_error(status: int, body: dict, where: str) -> StartupFailure:
    """The tracking server's own error_code/message mapped to the modelops reasons."""
    code, message = str(body.get("error_code") or ""), str(body.get("message") or "")[:300]
    said = f"{where}: HTTP {status} {code}{': ' + message if message else ''}".rstrip()
    missing = code == "INVALID_PARAMETER_VALUE" and "not found" in message.lower()
    if status == 404 or code == "RESOURCE_DOES_NOT_EXIST" or missing:
        return StartupFailure(ARTIFACT_NOT_FOUND, said)
    if status in (401, 403) or code in ("PERMISSION_DENIED", "UNAUTHENTICATED"):
        return StartupFailure(ACCESS_DENIED, said)
    return StartupFailure(DOWNLOAD_FAILED, said)


def proxied_path(artifact_uri: str) -> str:
    """The path under the server's artifact proxy for an `mlflow-artifacts:` location."""
    parts = urlsplit(artifact_uri)
    if parts.scheme != "mlflow-artifacts":
        raise StartupFailure(DOWNLOAD_FAILED, f"the tracking server stores this model at a "
                             f"{parts.scheme or 'local'}: location, not behind its artifact proxy; "
                             "run `mlflow server` with artifact serving (the default)")
    return quote(parts.path.strip("/"), safe="/")
