"""Find, download and verify the model artifact before anything deserialises it.

URIs: `file:///abs/path` or a bare absolute path (used in place); `http(s)://...` and
`s3://bucket/key` (downloaded into the artifact directory with a timeout and a size cap, or reused
when the init container already put it there); `models:/<name>/<version>` and
`models:/<name>@<alias>` (an MLflow model directory, see sources/mlflow.py);
`pvc://<claim>/<path>` and `configMap://<name>/<key>` (the operator mounts the volume at the
artifact directory). resolve_local_path and artifact_format are pure; fetch,
download and read_verified do the file and network I/O. Every failure is a StartupFailure whose
reason the operator shows (ArtifactNotFound, DownloadFailed, ChecksumMismatch, ...).
"""

from __future__ import annotations

import hashlib
import logging
import os
from collections.abc import Mapping
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING
from urllib.parse import unquote, urlsplit

from modelops import contract as c
from modelops.serving.failures import (
    ARTIFACT_NOT_FOUND, CHECKSUM_MISMATCH, DOWNLOAD_FAILED, UNSUPPORTED_FORMAT, StartupFailure,
)
from modelops.serving.settings import ServingSettings, invalid

_CHUNK = 1024 * 1024
_EXTENSIONS = {".joblib": "joblib", ".pkl": "joblib", ".pickle": "joblib", ".skops": "skops"}
REMOTE_SCHEMES = ("http", "https", "s3")
MLFLOW_SCHEME = "models"

log = logging.getLogger(__name__)

if TYPE_CHECKING:  # requests is imported only to download: its warning filters would slow
    import requests  # every prediction of a forest (sklearn re-applies them once per tree)


def resolve_local_path(uri: str, *, artifact_dir: Path) -> Path:
    """Where the artifact named by `uri` is (or will be, once downloaded) on local disk."""
    if uri.startswith("/"):
        return Path(uri)
    parts = urlsplit(uri)
    scheme, path = parts.scheme.lower(), unquote(parts.path)
    if scheme == "file":
        if parts.netloc not in ("", "localhost") or not path.startswith("/"):
            raise invalid(f"{c.ENV_ARTIFACT_URI} {uri!r}: use file:///absolute/path")
        return Path(path)
    if scheme == MLFLOW_SCHEME:
        from modelops.serving.sources import mlflow

        return mlflow.model_file(artifact_dir)
    if scheme in REMOTE_SCHEMES:
        name = PurePosixPath(path).name
        return artifact_dir / (name if name not in ("", ".", "..") else "artifact")
    if scheme == "pvc":
        return artifact_dir / _relative_path(uri, parts.netloc, path, "pvc://<claim>/<path>")
    if scheme == "configmap":
        key = _relative_path(uri, parts.netloc, path, "configMap://<name>/<key>")
        if len(key.parts) != 1:
            raise invalid(f"{c.ENV_ARTIFACT_URI} {uri!r}: a configMap key has no '/'")
        return artifact_dir / key
    raise invalid(
        f"{c.ENV_ARTIFACT_URI} {uri!r}: unsupported; use file:///path, an absolute path, "
        "http(s)://..., s3://<bucket>/<key>, models:/<name>/<version>, models:/<name>@<alias>, "
        "pvc://<claim>/<path> or configMap://<name>/<key>"
    )


def _relative_path(uri: str, volume: str, path: str, form: str) -> PurePosixPath:
    relative = PurePosixPath(path.lstrip("/"))
    if not volume or not relative.parts or ".." in relative.parts:
        raise invalid(f"{c.ENV_ARTIFACT_URI} {uri!r}: expected {form} without '..'")
    return relative


def is_remote(uri: str) -> bool:
    return urlsplit(uri).scheme.lower() in REMOTE_SCHEMES


def artifact_format(path: Path, configured: str) -> str:
    """joblib or skops: the configured format, else the one the file extension implies."""
    if configured:
        return configured
    found = _EXTENSIONS.get(path.suffix.lower())
    if found is None:
        raise StartupFailure(
            UNSUPPORTED_FORMAT,
            f"cannot tell the format of {path.name!r} from its extension "
            f"({', '.join(_EXTENSIONS)}); set {c.ENV_ARTIFACT_FORMAT} to joblib or skops",
        )
    return found


def check_sha256(actual: str, expected: str, what: str) -> None:
    """Raise ChecksumMismatch unless `expected` is empty or equals `actual`."""
    if expected and actual != expected:
        raise StartupFailure(
            CHECKSUM_MISMATCH,
            f"artifact sha256 is {actual} but {c.ENV_ARTIFACT_SHA256} is {expected} ({what})",
        )


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        while chunk := stream.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def read_verified(path: Path, expected_sha256: str) -> tuple[bytes, str]:
    """The artifact's bytes and sha256, checked: these exact bytes are what gets deserialised."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise StartupFailure(ARTIFACT_NOT_FOUND, f"no file at {path}") from None
    except OSError as error:
        raise StartupFailure(ARTIFACT_NOT_FOUND, f"cannot read {path}: {error}") from None
    actual = hashlib.sha256(data).hexdigest()
    check_sha256(actual, expected_sha256, str(path))
    return data, actual


def fetch(settings: ServingSettings, *, session: requests.Session | None = None,
          environ: Mapping[str, str] | None = None) -> Path:
    """Make sure the verified artifact is on local disk and return its path.

    `environ` carries the source options and credentials of s3:// and models:/ (default:
    os.environ); they are read only by the source that needs them, never logged."""
    environ = os.environ if environ is None else environ
    if urlsplit(settings.artifact_uri).scheme.lower() == MLFLOW_SCHEME:
        from modelops.serving.sources import mlflow

        return mlflow.fetch_model(settings, environ=environ, session=session)
    path = resolve_local_path(settings.artifact_uri, artifact_dir=settings.artifact_dir)
    expected = settings.artifact_sha256
    if is_remote(settings.artifact_uri):
        if path.is_file() and file_sha256(path) == expected:
            log.info("Reusing verified artifact %s", path)
            return path
        actual = download(settings.artifact_uri, path, timeout=settings.download_timeout_seconds,
                          max_bytes=settings.download_max_bytes, expected_sha256=expected,
                          session=session, environ=environ)
        log.info("Downloaded artifact %s (sha256 %s)", path, actual)
        return path
    if not path.is_file():
        raise StartupFailure(ARTIFACT_NOT_FOUND, f"no file at {path} (from {settings.artifact_uri})")
    check_sha256(file_sha256(path), expected, str(path))
    return path


def download(url: str, dest: Path, *, timeout: float, max_bytes: int, expected_sha256: str,
             session: requests.Session | None = None,
             environ: Mapping[str, str] | None = None) -> str:
    """Stream `url` into `dest` (via a .partial file), capped and checked; return its sha256."""
    if urlsplit(url).scheme.lower() == "s3":
        from modelops.serving.sources.s3 import download_object

        return download_object(url, dest, environ=os.environ if environ is None else environ,
                               timeout=timeout, max_bytes=max_bytes,
                               expected_sha256=expected_sha256, session=session)
    import requests

    partial = dest.with_name(dest.name + ".partial")
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
        actual = _stream_to(url, partial, timeout=timeout, max_bytes=max_bytes,
                            session=session or requests.Session())
        check_sha256(actual, expected_sha256, url)
        partial.replace(dest)
        return actual
    except requests.Timeout:
        raise StartupFailure(DOWNLOAD_FAILED, f"{url}: no response within {timeout:g} s") from None
    except requests.RequestException as error:
        raise StartupFailure(DOWNLOAD_FAILED, f"{url}: {type(error).__name__}: {error}") from None
    except OSError as error:
        raise StartupFailure(DOWNLOAD_FAILED, f"cannot write {partial}: {error}") from None
    finally:
        partial.unlink(missing_ok=True)


def _stream_to(url: str, target: Path, *, timeout: float, max_bytes: int,
               session: requests.Session) -> str:
    with session.get(url, stream=True, timeout=timeout) as response:
        if response.status_code in (404, 410):
            raise StartupFailure(ARTIFACT_NOT_FOUND, f"{url} answered HTTP {response.status_code}")
        if response.status_code >= 400:
            raise StartupFailure(DOWNLOAD_FAILED, f"{url} answered HTTP {response.status_code}")
        return _write_capped(response, target, url=url, max_bytes=max_bytes)


def _write_capped(response, target: Path, *, url: str, max_bytes: int) -> str:
    too_big = StartupFailure(DOWNLOAD_FAILED, f"{url} is larger than {c.ENV_DOWNLOAD_MAX_BYTES}={max_bytes}")
    declared = response.headers.get("Content-Length", "")
    if declared.isdigit() and int(declared) > max_bytes:
        raise too_big
    digest, size = hashlib.sha256(), 0
    with target.open("wb") as out:
        for chunk in response.iter_content(_CHUNK):
            size += len(chunk)
            if size > max_bytes:
                raise too_big
            digest.update(chunk)
            out.write(chunk)
    return digest.hexdigest()


def stream_response(response, dest: Path, *, uri: str, max_bytes: int,
                    expected_sha256: str) -> str:
    """Write an open streamed response into `dest` via a .partial file, capped and sha256-checked
    (the sources' shared tail); a failure leaves nothing at `dest`."""
    partial = dest.with_name(dest.name + ".partial")
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
        actual = _write_capped(response, partial, url=uri, max_bytes=max_bytes)
        check_sha256(actual, expected_sha256, uri)
        partial.replace(dest)
        return actual
    except OSError as error:
        raise StartupFailure(DOWNLOAD_FAILED, f"cannot write {partial}: {error}") from None
    finally:
        partial.unlink(missing_ok=True)
