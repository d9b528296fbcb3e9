"""Answers made by the candidate through the serving pods: requests pinned to it, and its canary
share, with no mesh.

A predict request names a version with OIP's versioned route (`POST /v2/models/<name>/versions/
<version>/infer`) or, on any predict route, the `Modelops-Version` header. `PinnedVersions` is WSGI
middleware in front of the app. A request pinned to this pod's own version goes to the app; one
pinned to the candidate named by the pod's annotations (the version in shadow, see shadow.py) is
forwarded to the candidate's Service and answered with the candidate's own status and body.
Unpinned requests go to the app, except the share `modelops.io/canary-percent` gives the
candidate (0 by default): chosen at random, or, with `modelops.io/canary-hash-header`, by a
stable hash of that header's value, so one user stays on one side. A canary request the
candidate cannot answer (refused, timeout) is answered here instead; its own errors are its
answers. A forwarded request is not this version's answer, so it is neither counted in this
version's request metrics (the candidate's pods count it;
`modelops_forwarded_requests_total{route}` here counts the forwarding) nor copied in shadow. A
version neither ours nor the candidate's is a 404 that names the reachable ones; a pinned
request the candidate does not answer is a 502 (refused, reset) or a 504 (timeout), all JSON.
An answer that does not carry the candidate's `Modelops-Version` is not the candidate's: for a
second after a Service is created kube-proxy may not have programmed it, its packets leave by
the node's default route and whatever listens there answers (an empty 404 on CI); it is treated
as unreachable, so a canary request is answered here and a pinned one is a 502.
Every predict answer carries the `Modelops-Version` header of the version that made it. Copies
(`Modelops-Shadow`) are never forwarded, and a forwarded request names the candidate's own
version, so nothing loops.
"""

from __future__ import annotations

import hashlib
import http.client
import io
import random
import re
import threading
import time
from collections.abc import Callable, Iterable

from prometheus_client import CollectorRegistry, Counter

from modelops import contract as c
from modelops.serving.body import read_body
from modelops.serving.errors import InvalidInput, NotFound, ServingError
from modelops.serving.routes import error_response, request_header
from modelops.serving.shadow import Shadow
from modelops.serving.shadow_client import CandidateClient

PIN_TIMEOUT_SECONDS = 30.0
"""How long a forwarded request may take, connect to last byte (the client waits anyway)."""
_PREDICT_PATH = re.compile(r"/v2/models/([^/]+)(?:/versions/([^/]+))?/infer|/v1/models/([^/:]+):predict")
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
                 timeout: float = PIN_TIMEOUT_SECONDS,
                 sample: Callable[[], float] = random.random) -> None:
        self.app, self.name, self.version, self.shadow = app, name, version, shadow
        self.max_body_bytes, self.timeout = max_body_bytes, timeout
        self._clients = threading.local()  # one kept connection per request thread
        self._sample = sample
        self._requests = Counter(c.METRIC_FORWARDED_REQUESTS, "Predict requests answered by another "
                                 "version (route: pinned to it, or its canary share), by its "
                                 "answer's status code (fallback: answered here instead)",
                                 ["model", "version", "target", "route", "code"],
                                 registry=registry)

    def __call__(self, environ: dict, start_response: Callable) -> Iterable[bytes]:
        route = self._pinned(environ)
        if route is None:
            return self.app(environ, start_response)
        if isinstance(route, ServingError):
            return error_response(route)(environ, start_response)
        version, named = route
        if version == self.version and (named or not self._canary(environ)):
            return self.app(environ, self._answered_by(start_response, self.version))
        if version == self.version:  # unpinned, and this one falls in the canary's share
            return self._canary_answer(environ, start_response)
        status, headers, body = self._forward(environ, version)
        return self._send(start_response, status, headers, body)

    def _pinned(self, environ: dict) -> tuple[str, bool] | ServingError | None:
        """(the version a predict request is for, whether it named one), an error, or None
        (not a predict request)."""
        if environ.get("REQUEST_METHOD") != "POST":
            return None
        path = environ.get("PATH_INFO", "").encode("latin-1").decode("utf-8", "replace")
        match = _PREDICT_PATH.fullmatch(path)
        if match is None or not self.version:
            return None
        if request_header(environ, c.HEADER_SHADOW):
            return self.version, True  # a copy: answered here, never forwarded
        in_path = match.group(2)
        in_header = (request_header(environ, c.HEADER_VERSION) or "").strip()
        if in_path and in_header and in_path != in_header:
            return InvalidInput(f"the path names version {in_path!r} and the {c.HEADER_VERSION} "
                                f"header {in_header!r}; name one")
        return (in_path or in_header or self.version), bool(in_path or in_header)

    def _canary(self, environ: dict) -> bool:
        """Whether the candidate answers this unpinned request: its share of requests, at
        random or, with a hash header, by a stable hash of that header's value."""
        target = self.shadow.annotations.target if self.shadow is not None else None
        if target is None or target.canary_percent <= 0:
            return False
        if target.canary_hash_header:
            value = request_header(environ, target.canary_hash_header)
            if value:
                digest = hashlib.blake2b(value.encode("latin-1", "replace"), digest_size=8)
                return int.from_bytes(digest.digest(), "big") % 10_000 < target.canary_percent * 100
        return self._sample() * 100.0 < target.canary_percent

    def _canary_answer(self, environ: dict, start_response: Callable) -> Iterable[bytes]:
        """The candidate's answer; this version's own when the candidate cannot answer (a
        canary's share must never turn into errors the candidate did not make)."""
        target = self.shadow.annotations.target
        try:
            body = read_body(environ, self.max_body_bytes)
        except ServingError as error:
            return error_response(error)(environ, start_response)
        try:
            status, headers, data = self._post(target.url, environ, body, target.version)
        except (Unreachable, CandidateTimeout):
            self._requests.labels(self.name, self.version, target.version, "canary",
                                  "fallback").inc()
            environ = {**environ, "wsgi.input": io.BytesIO(body), "CONTENT_LENGTH": str(len(body))}
            environ.pop("HTTP_CONTENT_ENCODING", None)
            return self.app(environ, self._answered_by(start_response, self.version))
        self._requests.labels(self.name, self.version, target.version, "canary", str(status)).inc()
        return self._send(start_response, status, [*headers, (c.HEADER_VERSION, target.version)],
                          data)

    @staticmethod
    def _send(start_response: Callable, status: int, headers: list, body: bytes) -> list[bytes]:
        start_response(f"{status} {http.client.responses.get(status, 'Unknown')}",
                       [*headers, ("Content-Length", str(len(body)))])
        return [body]

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
        self._requests.labels(self.name, self.version, version, "pinned", str(status)).inc()
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
            answer = client.post(url, path, body, headers, time.monotonic() + self.timeout)
        except TimeoutError:
            raise CandidateTimeout(f"version {version} (in shadow) did not answer within "
                                   f"{self.timeout:g} s") from None
        except (OSError, http.client.HTTPException) as error:
            raise Unreachable(f"version {version} (in shadow) is unreachable: "
                              f"{type(error).__name__}") from None
        if answer.version != version:
            who = f"version {answer.version}" if answer.version else "a server naming no version"
            raise Unreachable(f"version {version} (in shadow) is unreachable: HTTP "
                              f"{answer.status} from {who}")
        return answer.status, [("Content-Type", "application/json")], answer.body
