"""Where S3 credentials come from, in the order the AWS SDKs use for a pod.

1. AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY / AWS_SESSION_TOKEN (the operator fills them from the
   Secret named in spec.artifact.s3.credentialsSecret, via secretKeyRef);
2. IRSA / workload identity: AWS_WEB_IDENTITY_TOKEN_FILE + AWS_ROLE_ARN, exchanged at STS
   (AssumeRoleWithWebIdentity; AWS_ENDPOINT_URL_STS overrides the regional endpoint);
3. EKS Pod Identity / ECS: AWS_CONTAINER_CREDENTIALS_FULL_URI with its authorization token;
4. none: the request goes unsigned (a public bucket). The EC2 instance metadata service is not
   consulted. Values are never logged; failures name the variable, not its value.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlencode

from modelops.serving.failures import ACCESS_DENIED, DOWNLOAD_FAILED, StartupFailure


@dataclass(frozen=True)
class Credentials:
    access_key: str
    secret_key: str
    session_token: str = ""

    def __repr__(self) -> str:  # never print a secret, even in a traceback
        return f"Credentials(access_key={self.access_key[:4]}..., secret_key=***)"


def from_static_env(environ: Mapping[str, str]) -> Credentials | None:
    key, secret = environ.get("AWS_ACCESS_KEY_ID", ""), environ.get("AWS_SECRET_ACCESS_KEY", "")
    if bool(key) != bool(secret):
        missing = "AWS_SECRET_ACCESS_KEY" if key else "AWS_ACCESS_KEY_ID"
        raise StartupFailure(ACCESS_DENIED, f"{missing} is empty while the other key is set "
                                            "(check the credentials Secret's keys)")
    return Credentials(key, secret, environ.get("AWS_SESSION_TOKEN", "")) if key else None


def resolve(environ: Mapping[str, str], *, session, timeout: float, region: str,
            verify: bool | str = True) -> Credentials | None:
    """The first credentials the chain finds, or None (anonymous)."""
    static = from_static_env(environ)
    if static is not None:
        return static
    if environ.get("AWS_WEB_IDENTITY_TOKEN_FILE") and environ.get("AWS_ROLE_ARN"):
        return _web_identity(environ, session, timeout, region, verify)
    if environ.get("AWS_CONTAINER_CREDENTIALS_FULL_URI"):
        return _container(environ, session, timeout)
    return None


def _web_identity(environ, session, timeout, region, verify) -> Credentials:
    token = _read_token(environ["AWS_WEB_IDENTITY_TOKEN_FILE"], "AWS_WEB_IDENTITY_TOKEN_FILE")
    endpoint = environ.get("AWS_ENDPOINT_URL_STS") or f"https://sts.{region}.amazonaws.com"
    query = urlencode({"Action": "AssumeRoleWithWebIdentity", "Version": "2011-06-15",
                       "RoleArn": environ["AWS_ROLE_ARN"], "WebIdentityToken": token,
                       "RoleSessionName": environ.get("AWS_ROLE_SESSION_NAME") or "modelops-fetch"})
    body = _get(session, f"{endpoint.rstrip('/')}/?{query}", timeout, "STS", verify=verify)
    from modelops.serving.sources.s3 import _xml_field

    key, secret = _xml_field(body, "AccessKeyId"), _xml_field(body, "SecretAccessKey")
    if not key or not secret:
        raise StartupFailure(ACCESS_DENIED, "STS AssumeRoleWithWebIdentity returned no credentials")
    return Credentials(key, secret, _xml_field(body, "SessionToken"))


def _container(environ, session, timeout) -> Credentials:
    headers = {}
    token_file = environ.get("AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE")
    if token_file:
        headers["Authorization"] = _read_token(token_file, "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE")
    elif environ.get("AWS_CONTAINER_AUTHORIZATION_TOKEN"):
        headers["Authorization"] = environ["AWS_CONTAINER_AUTHORIZATION_TOKEN"]
    body = _get(session, environ["AWS_CONTAINER_CREDENTIALS_FULL_URI"], timeout,
                "the container credentials endpoint", headers=headers)
    try:
        data = json.loads(body)
        return Credentials(data["AccessKeyId"], data["SecretAccessKey"], data.get("Token", ""))
    except (ValueError, KeyError, TypeError):
        raise StartupFailure(ACCESS_DENIED, "the container credentials endpoint returned no "
                                            "AccessKeyId/SecretAccessKey") from None


def _read_token(path: str, variable: str) -> str:
    try:
        return Path(path).read_text(encoding="utf-8").strip()
    except OSError as error:
        raise StartupFailure(ACCESS_DENIED, f"cannot read {variable}: {error.strerror}") from None


def _get(session, url: str, timeout: float, what: str, *, verify: bool | str = True,
         headers: Mapping[str, str] | None = None) -> bytes:
    import requests

    try:
        response = session.get(url, headers=dict(headers or {}), timeout=timeout, verify=verify)
    except requests.RequestException as error:
        raise StartupFailure(DOWNLOAD_FAILED, f"{what}: {type(error).__name__}") from None
    if response.status_code in (401, 403):
        raise StartupFailure(ACCESS_DENIED, f"{what} answered HTTP {response.status_code}")
    if response.status_code >= 300:
        raise StartupFailure(DOWNLOAD_FAILED, f"{what} answered HTTP {response.status_code}")
    return response.content
