"""`s3://bucket/key`: stream one object from S3 or an S3-compatible store (MinIO, Ceph, ...).

Requests are signed with AWS Signature Version 4 over `requests` (the serving image's HTTP
client). boto3 is not used: every botocore release pins python-dateutil<3 while the kubernetes
client in the same image needs >=3, and the image build's `pip check` refuses the pair.
Credentials come from the environment only (the operator injects them from a Secret with
secretKeyRef), or from the pod's identity: IRSA (web identity token -> STS) or EKS Pod Identity
(container credentials endpoint). Nothing secret is ever logged or put in a failure message.
`S3Location.parse`, `object_url` and `sign` are pure; `download_object` does the I/O.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from urllib.parse import quote, urlsplit

from modelops import contract as c
from modelops.serving.failures import ACCESS_DENIED, ARTIFACT_NOT_FOUND, DOWNLOAD_FAILED, StartupFailure
from modelops.serving.settings import invalid
from modelops.serving.sources import s3_credentials
from modelops.serving.sources.s3_credentials import Credentials

ADDRESSING = ("path", "virtual")
_NOT_FOUND = ("NoSuchKey", "NoSuchBucket", "NotFound")
_DENIED = ("AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch", "ExpiredToken",
           "InvalidToken", "AllAccessDisabled", "Forbidden")


@dataclass(frozen=True)
class S3Location:
    bucket: str
    key: str

    @classmethod
    def parse(cls, uri: str) -> S3Location:
        parts = urlsplit(uri)
        key = parts.path.lstrip("/")
        if parts.scheme != "s3" or not parts.netloc or not key or parts.query or parts.fragment:
            raise invalid(f"{c.ENV_ARTIFACT_URI} {uri!r}: expected s3://<bucket>/<key>")
        return cls(parts.netloc, key)


@dataclass(frozen=True)
class S3Options:
    """Where the store is; from MODELOPS_S3_* (endpoint empty = AWS in `region`)."""

    endpoint: str = ""
    region: str = "us-east-1"
    addressing: str = "virtual"
    ca_bundle: str = ""

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> S3Options:
        endpoint = environ.get(c.ENV_S3_ENDPOINT, "").strip().rstrip("/")
        region = (environ.get(c.ENV_S3_REGION) or environ.get("AWS_REGION")
                  or environ.get("AWS_DEFAULT_REGION") or "us-east-1").strip()
        default = "path" if endpoint else "virtual"
        addressing = environ.get(c.ENV_S3_ADDRESSING, "").strip() or default
        if addressing not in ADDRESSING:
            raise invalid(f"{c.ENV_S3_ADDRESSING} must be path or virtual, got {addressing!r}")
        if endpoint and urlsplit(endpoint).scheme not in ("http", "https"):
            raise invalid(f"{c.ENV_S3_ENDPOINT} must be http(s)://host[:port], got {endpoint!r}")
        return cls(endpoint, region, addressing, environ.get(c.ENV_S3_CA_BUNDLE, "").strip())


def object_url(location: S3Location, options: S3Options) -> str:
    """The object's URL for path- or virtual-host-style addressing (key percent-encoded)."""
    base = options.endpoint or f"https://s3.{options.region}.amazonaws.com"
    parts = urlsplit(base)
    key = quote(location.key, safe="/~")
    if options.addressing == "virtual":
        return f"{parts.scheme}://{location.bucket}.{parts.netloc}{parts.path}/{key}"
    return f"{parts.scheme}://{parts.netloc}{parts.path}/{location.bucket}/{key}"


def sign(method: str, url: str, *, region: str, credentials: Credentials, now: datetime,
         headers: Mapping[str, str] | None = None, payload_sha256: str = "UNSIGNED-PAYLOAD",
         service: str = "s3") -> dict[str, str]:
    """Headers (Host excluded) that sign the request with SigV4; pure given `now`."""
    parts = urlsplit(url)
    stamp, day = now.strftime("%Y%m%dT%H%M%SZ"), now.strftime("%Y%m%d")
    signed = {k.lower(): v.strip() for k, v in (headers or {}).items()}
    signed.update({"host": parts.netloc, "x-amz-date": stamp, "x-amz-content-sha256": payload_sha256})
    if credentials.session_token:
        signed["x-amz-security-token"] = credentials.session_token
    names = ";".join(sorted(signed))
    canonical = "\n".join([
        method, parts.path or "/", _canonical_query(parts.query),
        "".join(f"{k}:{signed[k]}\n" for k in sorted(signed)), names, payload_sha256])
    scope = f"{day}/{region}/{service}/aws4_request"
    to_sign = "\n".join(["AWS4-HMAC-SHA256", stamp, scope,
                         hashlib.sha256(canonical.encode()).hexdigest()])
    key = f"AWS4{credentials.secret_key}".encode()
    for part in (day, region, service, "aws4_request"):
        key = hmac.new(key, part.encode(), hashlib.sha256).digest()
    signature = hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()
    out = {k: v for k, v in signed.items() if k != "host"}
    out["authorization"] = (f"AWS4-HMAC-SHA256 Credential={credentials.access_key}/{scope}, "
                            f"SignedHeaders={names}, Signature={signature}")
    return out


def _canonical_query(query: str) -> str:
    pairs = [p.split("=", 1) + [""] * ("=" not in p) for p in query.split("&") if p]
    return "&".join(f"{quote(k, safe='-_.~')}={quote(v, safe='-_.~')}" for k, v in sorted(pairs))


def error_of(status: int, body: bytes, where: str) -> StartupFailure:
    """The store's own error code and message, mapped to ArtifactNotFound/AccessDenied/DownloadFailed."""
    code, message = _xml_field(body, "Code"), _xml_field(body, "Message")
    said = f"{where}: HTTP {status} {code or ''}{': ' + message if message else ''}".rstrip()
    if code in _NOT_FOUND or (not code and status == 404):
        return StartupFailure(ARTIFACT_NOT_FOUND, said)
    if code in _DENIED or (not code and status in (401, 403)):
        return StartupFailure(ACCESS_DENIED, said)
    return StartupFailure(DOWNLOAD_FAILED, said)


def _xml_field(body: bytes, name: str) -> str:
    text = body[:4096].decode("utf-8", "replace")
    start = text.find(f"<{name}>")
    end = text.find(f"</{name}>", start)
    return text[start + len(name) + 2:end].strip()[:300] if start >= 0 and end > start else ""


def download_object(uri: str, dest: Path, *, environ: Mapping[str, str], timeout: float,
                    max_bytes: int, expected_sha256: str, session=None) -> str:
    """Stream s3://bucket/key into `dest`, capped and sha256-checked; return the sha256."""
    import requests

    from modelops.serving.artifact import stream_response

    location, options = S3Location.parse(uri), S3Options.from_env(environ)
    session = session or requests.Session()
    verify: bool | str = options.ca_bundle or True
    credentials = s3_credentials.resolve(environ, session=session, timeout=timeout,
                                         region=options.region, verify=verify)
    url = object_url(location, options)
    headers = {}
    if credentials is not None:
        headers = sign("GET", url, region=options.region, credentials=credentials,
                       now=datetime.now(timezone.utc))
    try:
        with session.get(url, headers=headers, stream=True, timeout=timeout, verify=verify) as response:
            if response.status_code >= 300:
                raise error_of(response.status_code, response.raw.read(4096) or b"", uri)
            return stream_response(response, dest, uri=uri, max_bytes=max_bytes,
                                   expected_sha256=expected_sha256)
    except requests.Timeout:
        raise StartupFailure(DOWNLOAD_FAILED, f"{uri}: no response within {timeout:g} s") from None
    except requests.RequestException as error:
        raise StartupFailure(DOWNLOAD_FAILED, f"{uri}: {type(error).__name__}: {error}") from None
