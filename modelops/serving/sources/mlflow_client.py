"""A small client for the MLflow tracking server's REST API (registry + artifact proxy).

Used by the init container (download a model version's directory) and by the operator (resolve
an alias to a version). Only `requests`; no mlflow package in the image. The bearer token comes
from MLFLOW_TRACKING_TOKEN and is sent in a header only; errors carry the server's error_code and
message, never the token.
"""

from __future__ import annotations

import json
import posixpath
import shutil
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from modelops import contract as c
from modelops.serving.failures import DOWNLOAD_FAILED, StartupFailure
from modelops.serving.settings import invalid
from modelops.serving.sources.mlflow import MAX_FILES, ModelRef, api_error, proxied_path, replace_dir

REGISTRY = "/api/2.0/mlflow"
ARTIFACTS = "/api/2.0/mlflow-artifacts/artifacts"


@dataclass(frozen=True)
class TrackingClient:
    base: str
    timeout: float = 30.0
    token: str = field(default="", repr=False)
    verify: bool | str = True
    session: Any = field(default=None, repr=False, compare=False)

    @classmethod
    def from_env(cls, environ: Mapping[str, str], *, timeout: float, session=None) -> TrackingClient:
        base = environ.get(c.ENV_MLFLOW_TRACKING_URI, "").strip().rstrip("/")
        if urlsplit(base).scheme not in ("http", "https"):
            raise invalid(f"{c.ENV_MLFLOW_TRACKING_URI} must be http(s)://host[:port] for a "
                          f"models:/ artifact, got {base!r}")
        import requests

        return cls(base, timeout, environ.get(c.ENV_MLFLOW_TOKEN, ""),
                   environ.get(c.ENV_MLFLOW_CA_BUNDLE, "") or True, session or requests.Session())

    def resolve_version(self, ref: ModelRef) -> str:
        """The version a ref names: its own, or the one its alias points at now."""
        if ref.version:
            return ref.version
        body = self._json(f"{REGISTRY}/registered-models/alias", {"name": ref.name, "alias": ref.alias},
                          ref.uri())
        return str(body["model_version"]["version"])

    def download_model(self, name: str, version: str, target: Path, *, max_bytes: int) -> None:
        """Download the version's directory into `target` (atomically: via target.partial)."""
        from modelops.serving.artifact import stream_response

        where = f"models:/{name}/{version}"
        uri = self._json(f"{REGISTRY}/model-versions/get-download-uri",
                         {"name": name, "version": version}, where)["artifact_uri"]
        root = proxied_path(uri)
        partial = target.with_name(target.name + ".partial")
        shutil.rmtree(partial, ignore_errors=True)
        budget = max_bytes
        for relative in self._walk(root, where):
            with self._get(f"{ARTIFACTS}/{root}/{relative}", None, where, stream=True) as response:
                dest = partial / relative
                stream_response(response, dest, uri=f"{where} {relative}", max_bytes=budget,
                                expected_sha256="")
                budget -= dest.stat().st_size
        replace_dir(partial, target)

    def _walk(self, root: str, where: str) -> list[str]:
        files, pending = [], [""]
        while pending:
            directory = pending.pop()
            listing = self._json(ARTIFACTS, {"path": posixpath.join(root, directory).rstrip("/")}, where)
            for entry in listing.get("files", []):
                name = posixpath.join(directory, posixpath.basename(entry["path"]))
                (pending if entry.get("is_dir") else files).append(name)
            if len(files) + len(pending) > MAX_FILES:
                raise StartupFailure(DOWNLOAD_FAILED, f"{where} has more than {MAX_FILES} files")
        if not files:
            raise api_error(404, {"message": "the model directory is empty"}, where)
        return sorted(files)

    def _json(self, path: str, params: Mapping[str, str], where: str) -> dict:
        with self._get(path, params, where) as response:
            try:
                return json.loads(response.content or b"{}")
            except ValueError:
                raise StartupFailure(DOWNLOAD_FAILED, f"{where}: the tracking server did not answer JSON") from None

    def _get(self, path: str, params, where: str, *, stream: bool = False):
        import requests

        headers = {"Authorization": f"Bearer {self.token}"} if self.token else {}
        try:
            response = self.session.get(self.base + path, params=params, headers=headers,
                                        timeout=self.timeout, verify=self.verify, stream=stream)
        except requests.Timeout:
            raise StartupFailure(DOWNLOAD_FAILED, f"{where}: no answer from {self.base} within "
                                                  f"{self.timeout:g} s") from None
        except requests.RequestException as error:
            raise StartupFailure(DOWNLOAD_FAILED, f"{where}: {self.base}: {type(error).__name__}") from None
        if response.status_code >= 300:
            try:
                body = response.json()
            except ValueError:
                body = {}
            response.close()
            raise api_error(response.status_code, body if isinstance(body, dict) else {}, where)
        return response
