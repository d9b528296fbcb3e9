"""Requests pinned to a version: try the candidate in shadow by hand, through the Model's Service.

A predict request names a version with OIP's versioned route (`POST /v2/models/<name>/versions/
<version>/infer`) or, on any predict route, the `Modelops-Version` header. `PinnedVersions` is WSGI
middleware in front of the app: a request pinned to this pod's own version (or to none) goes to
the app as usual; one pinned to the version this pod copies shadow traffic to (the candidate
named by the pod's annotations, see shadow.py) is forwarded to the candidate's Service and
answered with the candidate's own status and body. A forwarded request is not this version's
answer, so it is neither counted in this version's request metrics (the candidate's pods count
it; `modelops_pinned_requests_total` here counts the forwarding) nor copied in shadow. Any other
version is a 404 that names the versions this pod can reach; a candidate that does not answer is
a 502 (refused, reset) or a 504 (timeout), both JSON. Every predict answer carries the
`Modelops-Version` header of the version that made it. Copies (`Modelops-Shadow`) are never
forwarded, and the forwarded request names the candidate's own version, so nothing loops.
"""

from __future__ import annotations

import http.client
import logging
import re
import threading
import time
from collections.abc import Callable, Iterable

from prometheus_client import CollectorRegistry, Counter

from modelops import contract as c
from modelops.serving.body import read_body
from modelops.serving.errors import InvalidInput, NotFound, ServingError
from modelops.serving.routes import error_response
from modelops.serving.shadow import Shadow
from modelops.serving.shadow_client import CandidateClient

log = logging.getLogger(__name__)

PIN_TIMEOUT_SECONDS = 30.0
"""How long a forwarded request may take, connect to last byte (the client waits anyway)."""
_PREDICT_PATH = re.compile(r"/v2/models/([^/]+)(?:/versions/([^/]+))?/infer|/v1/models/([^/:]+):predict")
_VERSION_ENVIRON = "HTTP_" + c.HEADER_VERSION.upper().replace("-", "_")
_SHADOW_ENVIRON = "HTTP_" + c.HEADER_SHADOW.upper().replace("-", "_")
_PASSED_ON = {"CONTENT_TYPE": "Content-Type", "HTTP_X_REQUEST_ID": "X-Request-Id",
              "HTTP_INFERENCE_HEADER_CONTENT_LENGTH": "Inference-Header-Content-Length"}


class Unreachable(ServingError):
    status = 502


class CandidateTimeout(ServingError):
    status = 504


class PinnedVersions:
    """WSGI middleware: forward requests pinned to the shadow candidate's version."""

    def __init__(self, app: Callable, *, name: str, version: str, shadow: Shadow | None,
                 max_body_bytes: int, registry: CollectorRegistry,
                 timeout: float = PIN_TIMEOUT_SECONDS) -> None:
        self.app, self.name, self.version, self.shadow = app, name, version, shadow
        self.max_body_bytes, self.timeout = max_body_bytes, timeout
        self._clients = threading.local()  # one kept connection per request thread
        self._requests = Counter(c.METRIC_PINNED_REQUESTS, "Predict requests pinned to another "
                                 "version and forwarded to it, by its answer's status code",
                                 ["model", "version", "target", "code"], registry=registry)

    def __call__(self, environ: dict, start_response: Callable) -> Iterable[bytes]:
        pinned = self._pinned(environ)
        if pinned is None:
            return self.app(environ, start_response)
        if isinstance(pinned, ServingError):
            return error_response(pinned)(environ, start_response)
        if pinned == self.version:
            return self.app(environ, self._answered_by(start_response, self.version))
        status, headers, body = self._forward(environ, pinned)
        start_response(f"{status} {http.client.responses.get(status, 'Unknown')}",
                       [*headers, ("Content-Length", str(len(body)))])
        return [body]

    def _pinned(self, environ: dict) -> str | ServingError | None:
        """The version a predict request is pinned to, an error, or None (not pinned)."""
        if environ.get("REQUEST_METHOD") != "POST" or environ.get(_SHADOW_ENVIRON):
            return None
        path = environ.get("PATH_INFO", "").encode("latin-1").decode("utf-8", "replace")
        match = _PREDICT_PATH.fullmatch(path)
        if match is None:
            return None
        in_path, in_header = match.group(2), environ.get(_VERSION_ENVIRON, "").strip()
        if in_path and in_header and in_path != in_header:
            return InvalidInput(f"the path names version {in_path!r} and the {c.HEADER_VERSION} "
                                f"header {in_header!r}; name one")
        return in_path or in_header or self.version or None

    def _answered_by(self, start_response: Callable, version: str) -> Callable:
        def start(status: str, headers: list, exc_info=None):
            return start_response(status, [*headers, (c.HEADER_VERSION, version)], exc_info)
        return start

    def _forward(self, environ: dict, version: str) -> tuple[int, list, bytes]:
        target = self.shadow.annotations.target if self.shadow is not None else None
        try:
            if target is None or target.version != version:
                reachable = [self.version] + ([f"{target.version} (in shadow)"] if target else [])
                raise NotFound(f"model {self.name!r} has no version {version!r} here; this "
                               f"Service reaches version {', '.join(reachable)}")
            body = read_body(environ, self.max_body_bytes)
            status, headers, data = self._post(target.url, environ, body, version)
        except ServingError as error:
            response = error_response(error)
            return error.status, [("Content-Type", "application/json")], response.get_data()
        self._requests.labels(self.name, self.version, version, str(status)).inc()
        return status, [*headers, (c.HEADER_VERSION, version)], data

    def _post(self, url: str, environ: dict, body: bytes, version: str) -> tuple[int, list, bytes]:
        client = getattr(self._clients, "client", None)
        if client is None:
            client = self._clients.client = CandidateClient()
        headers = {name: environ[key] for key, name in _PASSED_ON.items() if environ.get(key)}
        headers[c.HEADER_VERSION] = version
        path = environ.get("PATH_INFO", "")
        if environ.get("QUERY_STRING"):
            path += "?" + environ["QUERY_STRING"]
        try:
            status, data = client.post(url, path, body, headers, time.monotonic() + self.timeout)
        except TimeoutError:
            raise CandidateTimeout(f"version {version} (in shadow) did not answer within "
                                   f"{self.timeout:g} s") from None
        except (OSError, http.client.HTTPException) as error:
            raise Unreachable(f"version {version} (in shadow) is unreachable: "
                              f"{type(error).__name__}") from None
        return status, [("Content-Type", "application/json")], data
