"""Artifact URIs, formats, sha256 checks, and downloads from a real loopback HTTP server."""

from __future__ import annotations

import hashlib
import threading
import time
from dataclasses import replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from modelops.serving.artifact import (
    artifact_format, download, fetch, is_remote, read_verified, resolve_local_path,
)
from modelops.serving.failures import StartupFailure
from modelops.serving.settings import ServingSettings

DIR = Path("/var/lib/modelops/artifact")
PAYLOAD = b"model bytes " * 1000
PAYLOAD_SHA = hashlib.sha256(PAYLOAD).hexdigest()


@pytest.mark.parametrize(("uri", "expected"), [
    ("/models/iris.joblib", Path("/models/iris.joblib")),
    ("file:///models/iris.joblib", Path("/models/iris.joblib")),
    ("file://localhost/models/a%20b.pkl", Path("/models/a b.pkl")),
    ("https://models.example/iris/3/model.joblib?sig=x", DIR / "model.joblib"),
    ("http://models.example/", DIR / "artifact"),
    ("pvc://claim/iris/3/model.skops", DIR / "iris/3/model.skops"),
    ("configMap://iris-model/model.joblib", DIR / "model.joblib"),
    ("configmap://iris-model/model.joblib", DIR / "model.joblib"),
])
def test_resolve_local_path(uri, expected):
    assert resolve_local_path(uri, artifact_dir=DIR) == expected


@pytest.mark.parametrize("uri", [
    "models/iris.joblib", "file://otherhost/m.joblib", "file:relative", "gs://bucket/m.joblib",
    "pvc://claim", "pvc:///path", "pvc://claim/../../etc/passwd", "configMap://cm/a/b",
    "configMap://cm/", "configMap:///key", "ftp://x/y",
])
def test_bad_uris_are_invalid_settings(uri):
    with pytest.raises(StartupFailure) as raised:
        resolve_local_path(uri, artifact_dir=DIR)
    assert raised.value.reason == "InvalidSettings" and "MODELOPS_ARTIFACT_URI" in raised.value.message


def test_is_remote():
    assert is_remote("https://x/y") and is_remote("HTTP://x/y")
    assert not is_remote("/x") and not is_remote("pvc://c/p")


@pytest.mark.parametrize(("name", "configured", "expected"), [
    ("m.joblib", "", "joblib"), ("m.PKL", "", "joblib"), ("m.pickle", "", "joblib"),
    ("m.skops", "", "skops"), ("m.bin", "skops", "skops"), ("m.joblib", "skops", "skops"),
])
def test_artifact_format(name, configured, expected):
    assert artifact_format(Path(name), configured) == expected


def test_unknown_extension_is_unsupported_format():
    with pytest.raises(StartupFailure) as raised:
        artifact_format(Path("model.bin"), "")
    assert raised.value.reason == "UnsupportedFormat" and "MODELOPS_ARTIFACT_FORMAT" in raised.value.message


def test_read_verified_returns_the_checked_bytes(tmp_path):
    path = tmp_path / "m.joblib"
    path.write_bytes(PAYLOAD)
    assert read_verified(path, PAYLOAD_SHA) == (PAYLOAD, PAYLOAD_SHA)
    assert read_verified(path, "") == (PAYLOAD, PAYLOAD_SHA)  # no pin: still hashed


def test_read_verified_refuses_a_mismatch_naming_both_hashes(tmp_path):
    path = tmp_path / "m.joblib"
    path.write_bytes(PAYLOAD + b"tampered")
    with pytest.raises(StartupFailure) as raised:
        read_verified(path, PAYLOAD_SHA)
    assert raised.value.reason == "ChecksumMismatch"
    assert PAYLOAD_SHA in raised.value.message
    assert hashlib.sha256(PAYLOAD + b"tampered").hexdigest() in raised.value.message


def test_read_verified_missing_file(tmp_path):
    with pytest.raises(StartupFailure) as raised:
        read_verified(tmp_path / "absent.joblib", PAYLOAD_SHA)
    assert raised.value.reason == "ArtifactNotFound"


class _Handler(BaseHTTPRequestHandler):
    routes: dict = {}
    hits: list = []

    def do_GET(self):  # noqa: N802 - http.server's naming
        self.hits.append(self.path)
        status, body, delay, headers = self.routes.get(self.path, (404, b"", 0.0, {}))
        time.sleep(delay)
        self.send_response(status)
        for key, value in {"Content-Length": str(len(body)), **headers}.items():
            if value is not None:  # None: leave the header out (HTTP/1.0, body ends at close)
                self.send_header(key, value)
        self.end_headers()
        try:
            self.wfile.write(body)
        except (BrokenPipeError, ConnectionResetError):  # the client gave up (timeout tests)
            pass

    def log_message(self, *args):
        pass


@pytest.fixture
def http_server():
    _Handler.routes, _Handler.hits = {}, []
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=server.serve_forever, args=(0.02,), daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", _Handler
    server.shutdown()
    server.server_close()


def _settings(url: str, directory: Path, **overrides) -> ServingSettings:
    base = ServingSettings(model_name="m", artifact_uri=url, artifact_sha256=PAYLOAD_SHA,
                           artifact_dir=directory, download_timeout_seconds=5.0)
    return replace(base, **overrides)


def test_fetch_downloads_verifies_and_then_reuses(http_server, tmp_path):
    base, handler = http_server
    handler.routes["/m/model.joblib"] = (200, PAYLOAD, 0.0, {})
    settings = _settings(f"{base}/m/model.joblib", tmp_path / "artifact")
    path = fetch(settings)
    assert path == tmp_path / "artifact" / "model.joblib" and path.read_bytes() == PAYLOAD
    assert fetch(settings) == path  # the init container's file is re-verified, not re-downloaded
    assert handler.hits == ["/m/model.joblib"]
    assert not list((tmp_path / "artifact").glob("*.partial"))


def test_fetch_downloads_again_when_the_local_copy_is_wrong(http_server, tmp_path):
    base, handler = http_server
    handler.routes["/model.joblib"] = (200, PAYLOAD, 0.0, {})
    (tmp_path / "model.joblib").write_bytes(b"stale")
    assert fetch(_settings(f"{base}/model.joblib", tmp_path)).read_bytes() == PAYLOAD


@pytest.mark.parametrize(("route", "reason", "fragment"), [
    ((404, b"", 0.0, {}), "ArtifactNotFound", "HTTP 404"),
    ((500, b"oops", 0.0, {}), "DownloadFailed", "HTTP 500"),
    ((200, b"other bytes", 0.0, {}), "ChecksumMismatch", PAYLOAD_SHA),
    ((200, b"x" * 2000, 0.0, {}), "DownloadFailed", "MODELOPS_DOWNLOAD_MAX_BYTES"),
    ((200, PAYLOAD, 2.0, {}), "DownloadFailed", "no response within"),
])
def test_download_failures_have_reasons(http_server, tmp_path, route, reason, fragment):
    base, handler = http_server
    handler.routes["/model.joblib"] = route
    settings = _settings(f"{base}/model.joblib", tmp_path, download_max_bytes=1000,
                         download_timeout_seconds=0.3)
    if route[1] == PAYLOAD:
        settings = replace(settings, download_max_bytes=10**6)
    with pytest.raises(StartupFailure) as raised:
        fetch(settings)
    assert raised.value.reason == reason and fragment in raised.value.message
    assert not (tmp_path / "model.joblib").exists() and not list(tmp_path.glob("*.partial"))


def test_streamed_body_over_the_cap_is_refused_without_a_content_length(http_server, tmp_path):
    base, handler = http_server
    handler.routes["/model.joblib"] = (200, b"y" * 5000, 0.0, {"Content-Length": None})
    with pytest.raises(StartupFailure, match="MODELOPS_DOWNLOAD_MAX_BYTES"):
        download(f"{base}/model.joblib", tmp_path / "model.joblib", timeout=5.0, max_bytes=4000,
                 expected_sha256="")


def test_unreachable_server_is_download_failed(tmp_path):
    with pytest.raises(StartupFailure) as raised:
        download("http://127.0.0.1:9/model.joblib", tmp_path / "model.joblib", timeout=2.0,
                 max_bytes=100, expected_sha256=PAYLOAD_SHA)
    assert raised.value.reason == "DownloadFailed" and "ConnectionError" in raised.value.message


def test_fetch_local_file_checks_presence_and_hash(tmp_path):
    path = tmp_path / "m.joblib"
    with pytest.raises(StartupFailure, match="ArtifactNotFound"):
        fetch(_settings(str(path), tmp_path))
    path.write_bytes(b"different")
    with pytest.raises(StartupFailure, match="ChecksumMismatch"):
        fetch(_settings(f"file://{path}", tmp_path))
    path.write_bytes(PAYLOAD)
    assert fetch(_settings(f"file://{path}", tmp_path)) == path
