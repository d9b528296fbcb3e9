"""s3:// artifacts: the pure parts, then a real S3-compatible server (moto, IAM auth on) on loopback."""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import requests
import stores

from modelops.serving.app import load_from_settings
from modelops.serving.artifact import fetch
from modelops.serving.failures import StartupFailure
from modelops.serving.settings import ServingSettings
from modelops.serving.sources import s3_credentials
from modelops.serving.sources.s3 import S3Location, S3Options, error_of, object_url, sign
from modelops.serving.sources.s3_credentials import Credentials
from tests.ports import free_port


# --- pure ----------------------------------------------------------------------------------------

@pytest.mark.parametrize("uri", ["s3://bucket", "s3:///key", "s3://b/", "s3://b/k?versionId=1",
                                 "http://b/k"])
def test_bad_s3_uris_are_invalid_settings(uri):
    with pytest.raises(StartupFailure) as failed:
        S3Location.parse(uri)
    assert failed.value.reason == "InvalidSettings"


@pytest.mark.parametrize("options, url", [
    (S3Options(), "https://bkt.s3.us-east-1.amazonaws.com/a%20b/model.joblib"),
    (S3Options(region="eu-west-3", addressing="path"),
     "https://s3.eu-west-3.amazonaws.com/bkt/a%20b/model.joblib"),
    (S3Options(endpoint="http://minio:9000", addressing="path"), "http://minio:9000/bkt/a%20b/model.joblib"),
    (S3Options(endpoint="https://store.example", addressing="virtual"),
     "https://bkt.store.example/a%20b/model.joblib"),
])
def test_object_url_per_addressing_style(options, url):
    assert object_url(S3Location("bkt", "a b/model.joblib"), options) == url


def test_options_default_to_path_style_with_an_endpoint_and_virtual_without():
    assert S3Options.from_env({"MODELOPS_S3_ENDPOINT": "http://m:9000"}).addressing == "path"
    assert S3Options.from_env({"AWS_REGION": "eu-north-1"}) == S3Options(region="eu-north-1")
    with pytest.raises(StartupFailure, match="MODELOPS_S3_ADDRESSING"):
        S3Options.from_env({"MODELOPS_S3_ADDRESSING": "dns"})


def test_sigv4_matches_the_documented_aws_example():
    """AWS's S3 SigV4 'GET Object' example (examplebucket/test.txt, Range bytes=0-9)."""
    headers = sign("GET", "https://examplebucket.s3.amazonaws.com/test.txt", region="us-east-1",
                   credentials=Credentials("AKIAIOSFODNN7EXAMPLE",
                                           "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"),
                   now=datetime(2013, 5, 24, tzinfo=timezone.utc), headers={"Range": "bytes=0-9"},
                   payload_sha256="e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
    assert headers["authorization"].endswith(
        "SignedHeaders=host;range;x-amz-content-sha256;x-amz-date, "
        "Signature=f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41")


@pytest.mark.parametrize("status, body, reason", [
    (404, b"<Error><Code>NoSuchKey</Code><Message>gone</Message></Error>", "ArtifactNotFound"),
    (404, b"<Error><Code>NoSuchBucket</Code></Error>", "ArtifactNotFound"),
    (403, b"<Error><Code>SignatureDoesNotMatch</Code><Message>bad</Message></Error>", "AccessDenied"),
    (403, b"", "AccessDenied"),
    (503, b"<Error><Code>SlowDown</Code><Message>reduce</Message></Error>", "DownloadFailed"),
])
def test_store_errors_map_to_reasons_with_the_stores_message(status, body, reason):
    failure = error_of(status, body, "s3://b/k")
    assert failure.reason == reason
    assert failure.message.startswith(f"s3://b/k: HTTP {status}")


def test_credentials_never_show_their_secret():
    creds = Credentials("AKIAEXAMPLEKEY", "very-secret", "token-secret")
    assert "very-secret" not in repr(creds) and "token-secret" not in repr(creds)
    with pytest.raises(StartupFailure) as failed:
        s3_credentials.from_static_env({"AWS_ACCESS_KEY_ID": "AKIA"})
    assert failed.value.reason == "AccessDenied" and "AWS_SECRET_ACCESS_KEY" in failed.value.message
    assert s3_credentials.from_static_env({}) is None


# --- a real S3-compatible server ------------------------------------------------------------------

@pytest.fixture(scope="module")
def store(tmp_path_factory, artifacts):
    process, store = stores.start_s3(stores.servers_venv(), tmp_path_factory.mktemp("moto") / "moto.log")
    try:
        store.put("models", "iris/v1/model.joblib", artifacts.iris.path)
        store.put("models", "big.joblib", artifacts.forest.path)
        yield store
    finally:
        stores.stop(process)


def settings(tmp_path: Path, uri: str, sha256: str, **extra) -> ServingSettings:
    return ServingSettings(model_name="iris", artifact_uri=uri, artifact_sha256=sha256,
                           artifact_dir=tmp_path / "artifact", download_timeout_seconds=10, **extra)


def env(store, **extra) -> dict[str, str]:
    return {"MODELOPS_S3_ENDPOINT": store.endpoint, "AWS_ACCESS_KEY_ID": store.key,
            "AWS_SECRET_ACCESS_KEY": store.secret, **extra}


def test_path_style_download_is_verified_and_served(store, artifacts, tmp_path):
    s = settings(tmp_path, "s3://models/iris/v1/model.joblib", artifacts.iris.sha256)
    path = fetch(s, environ=env(store))
    assert path == tmp_path / "artifact" / "model.joblib"
    assert path.read_bytes() == artifacts.iris.path.read_bytes()
    model = load_from_settings(s)
    assert model.predict([[5.1, 3.5, 1.4, 0.2]], "predict") == [0]
    # the serving container's own fetch reuses the verified file without credentials
    assert fetch(s, environ={}) == path


class LoopbackVirtualHosts(requests.Session):
    """Connect to 127.0.0.1 while the Host header (signed, and routed on by the store) names
    <bucket>.s3.localhost: virtual-host style without DNS for *.localhost here."""

    def __init__(self, port: int) -> None:
        super().__init__()
        self.port = port

    def request(self, method, url, **kwargs):
        parts = urlsplit(url)
        kwargs.setdefault("headers", {})["Host"] = parts.netloc
        return super().request(method, parts._replace(netloc=f"127.0.0.1:{self.port}").geturl(), **kwargs)


def test_virtual_host_style_download(store, artifacts, tmp_path):
    port = urlsplit(store.endpoint).port
    s = settings(tmp_path, "s3://models/iris/v1/model.joblib", artifacts.iris.sha256)
    path = fetch(s, session=LoopbackVirtualHosts(port),
                 environ=env(store, MODELOPS_S3_ENDPOINT=f"http://s3.localhost:{port}",
                             MODELOPS_S3_ADDRESSING="virtual"))
    assert path.read_bytes() == artifacts.iris.path.read_bytes()


@pytest.mark.parametrize("uri, overrides, reason, said", [
    ("s3://models/iris/v1/model.joblib", {"AWS_SECRET_ACCESS_KEY": "wrong-secret-value"},
     "AccessDenied", "SignatureDoesNotMatch"),
    ("s3://models/iris/v1/model.joblib", {"AWS_ACCESS_KEY_ID": "AKIANOSUCHKEY0000000"},
     "AccessDenied", "InvalidAccessKeyId"),
    ("s3://models/iris/v2/model.joblib", {}, "ArtifactNotFound", "NoSuchKey"),
    ("s3://nobucket/model.joblib", {}, "ArtifactNotFound", "NoSuchBucket"),
])
def test_failures_carry_the_stores_own_code_and_no_secret(store, artifacts, tmp_path, uri,
                                                         overrides, reason, said):
    with pytest.raises(StartupFailure) as failed:
        fetch(settings(tmp_path, uri, artifacts.iris.sha256), environ=env(store, **overrides))
    assert failed.value.reason == reason and said in failed.value.message
    assert store.secret not in failed.value.line() and "wrong-secret-value" not in failed.value.line()
    assert not (tmp_path / "artifact" / "model.joblib").exists()


def test_wrong_sha256_leaves_nothing_to_deserialise(store, tmp_path):
    with pytest.raises(StartupFailure) as failed:
        fetch(settings(tmp_path, "s3://models/iris/v1/model.joblib", "0" * 64), environ=env(store))
    assert failed.value.reason == "ChecksumMismatch"
    assert list((tmp_path / "artifact").iterdir()) == []


def test_size_limit(store, artifacts, tmp_path):
    limit = artifacts.forest.path.stat().st_size - 1
    with pytest.raises(StartupFailure) as failed:
        fetch(settings(tmp_path, "s3://models/big.joblib", artifacts.forest.sha256,
                       download_max_bytes=limit), environ=env(store))
    assert failed.value.reason == "DownloadFailed"
    assert f"MODELOPS_DOWNLOAD_MAX_BYTES={limit}" in failed.value.message
    assert list((tmp_path / "artifact").iterdir()) == []


def test_no_credentials_is_an_unsigned_request_the_store_refuses(store, artifacts, tmp_path):
    with pytest.raises(StartupFailure) as failed:
        fetch(settings(tmp_path, "s3://models/iris/v1/model.joblib", artifacts.iris.sha256),
              environ={"MODELOPS_S3_ENDPOINT": store.endpoint})
    assert failed.value.reason == "AccessDenied"


def test_unreachable_endpoint_is_download_failed(artifacts, tmp_path):
    port = free_port()
    with pytest.raises(StartupFailure) as failed:
        fetch(settings(tmp_path, "s3://models/m.joblib", artifacts.iris.sha256),
              environ={"MODELOPS_S3_ENDPOINT": f"http://127.0.0.1:{port}",
                       "AWS_ACCESS_KEY_ID": "AKIA", "AWS_SECRET_ACCESS_KEY": "s"})
    assert failed.value.reason == "DownloadFailed" and "ConnectionError" in failed.value.message


def test_init_container_command_writes_the_reason_line_and_never_the_secret(store, artifacts, tmp_path):
    """`python -m modelops.serving fetch` as the init container runs it: the termination message
    is the `<Reason>: <message>` line the operator parses; the secret is in neither it nor the log."""
    import subprocess
    import sys

    from modelops.operator.observe import REASON_LINE

    termination = tmp_path / "termination-log"
    base = {"PATH": "/usr/bin:/bin", "MODELOPS_MODEL_NAME": "iris", "MODELOPS_TERMINATION_LOG": str(termination),
            "MODELOPS_ARTIFACT_URI": "s3://models/iris/v1/model.joblib",
            "MODELOPS_ARTIFACT_SHA256": artifacts.iris.sha256,
            "MODELOPS_ARTIFACT_DIR": str(tmp_path / "artifact")}
    ok = subprocess.run([sys.executable, "-m", "modelops.serving", "fetch"], env={**base, **env(store)},
                        capture_output=True, text=True, timeout=60)
    assert ok.returncode == 0, ok.stderr
    assert (tmp_path / "artifact" / "model.joblib").read_bytes() == artifacts.iris.path.read_bytes()
    (tmp_path / "artifact" / "model.joblib").unlink()
    wrong = "not-the-secret-" + store.secret[:8]
    bad = subprocess.run([sys.executable, "-m", "modelops.serving", "fetch"],
                         env={**base, **env(store, AWS_SECRET_ACCESS_KEY=wrong)},
                         capture_output=True, text=True, timeout=60)
    line = termination.read_text().strip()
    assert bad.returncode == 1 and REASON_LINE.match(line) and line.startswith("AccessDenied: ")
    assert "SignatureDoesNotMatch" in line
    for text in (line, bad.stderr, bad.stdout):
        assert wrong not in text and store.secret not in text
