"""HTTP routes: KServe v1, Open Inference Protocol v2, health, feedback, metrics, OpenAPI.

Thin: each handler checks the model name, reads the body within the limit, lets v1/v2 parse it,
asks the backend (model or pipeline) and formats the answer. Inference routes are timed and
counted by protocol and status code; every error is `{"error": "..."}` with its status. There is
no route that loads or changes a model. The v2 infer routes, the hot path, are also served
straight from WSGI (`infer_fast_path`), skipping Flask's per-request context and dispatch
(about 40 us a request), with the very same handler and answers.
"""

from __future__ import annotations

import logging
import re
import time
import uuid
from collections.abc import Callable
from functools import cache
from importlib import metadata as package_metadata

import orjson
from flask import Flask, Response, request
from prometheus_client import CONTENT_TYPE_LATEST

from modelops import contract as c
from modelops.serving import v1, v2
from modelops.serving.body import json_object, read_body
from modelops.serving.dataplane import InferResult
from modelops.serving.errors import InvalidInput, NotFound, NotReady, ServingError
from modelops.serving.feedback import Feedback
from modelops.serving.metrics import ServingMetrics
from modelops.serving.openapi import OpenApiDocument
from modelops.serving.shadow import Shadow

log = logging.getLogger(__name__)

REQUEST_ID_HEADER = "X-Request-Id"
BINARY_HEADER = "Inference-Header-Content-Length"
MAX_REQUEST_ID = 256
# What Flask's `/v2/models/<name>[/versions/<version>]/infer` rules match (werkzeug's default
# converter is [^/]+), on the path as werkzeug decodes it.
_V2_INFER_PATH = re.compile(r"/v2/models/([^/]+)(?:/versions/([^/]+))?/infer")
_HEADER_VALUE = re.compile(r"[ \t\x21-\x7e\x80-\xff]*")  # what gunicorn lets out (RFC 9110)


def request_header(environ: dict, name: str) -> str | None:
    """A request header from the WSGI environ, as werkzeug's `request.headers.get` reads it."""
    return environ.get("HTTP_" + name.upper().replace("-", "_"))


def json_response(payload: object, status: int = 200, headers: dict | None = None) -> Response:
    """JSON answer; NaN and infinities are sent as null (valid JSON, as orjson encodes them)."""
    return Response(orjson.dumps(payload, default=_json_default), status=status, headers=headers,
                    mimetype="application/json")


def error_response(error: ServingError) -> Response:
    return json_response({"error": error.message}, error.status)


def _json_default(value: object) -> object:
    item = getattr(value, "item", None)  # numpy scalars inside object arrays
    return item() if callable(item) else str(value)


class Routes:
    """The route handlers, bound to one backend (ModelBackend or PipelineBackend)."""

    def __init__(self, backend, metrics: ServingMetrics, *, max_body_bytes: int,
                 feedback: Feedback | None = None, openapi: OpenApiDocument,
                 shadow: Shadow | None = None) -> None:
        self.backend = backend
        self.shadow = shadow
        self.metrics = metrics
        self.max_body_bytes = max_body_bytes
        self.feedback = feedback
        self.openapi = openapi

    def register(self, app: Flask) -> None:
        rules = [
            ("/v1/models", self.v1_models, "GET"),
            ("/v1/models/<name>", self.v1_model, "GET"),
            ("/v1/models/<name>:predict", self.v1_predict, "POST"),
            ("/v1/models/<name>:feedback", self.feedback_post, "POST"),
            ("/v2", self.server_metadata, "GET"),
            (c.PATH_LIVE, self.live, "GET"),
            (c.PATH_READY, self.ready, "GET"),
            (c.PATH_METRICS, self.metrics_text, "GET"),
            ("/openapi.json", self.openapi_json, "GET"),
            ("/openapi.yaml", self.openapi_yaml, "GET"),
        ]
        for prefix in ("/v2/models/<name>", "/v2/models/<name>/versions/<version>"):
            rules += [
                (prefix, self.model_metadata, "GET"),
                (f"{prefix}/ready", self.model_ready, "GET"),
                (f"{prefix}/infer", self.v2_infer, "POST"),
                (f"{prefix}/feedback", self.feedback_post, "POST"),
            ]
        for rule, view, method in rules:
            app.add_url_rule(rule, endpoint=f"{view.__name__}:{rule}", view_func=view, methods=[method])

    # --- health and metadata -----------------------------------------------------------------
    def live(self) -> Response:
        return json_response({"live": True})

    def ready(self) -> Response:
        if self.backend.is_ready():
            return json_response({"ready": True})
        return json_response({"ready": False, "error": self.backend.not_ready_reason()}, 503)

    def server_metadata(self) -> Response:
        return json_response({"name": "modelops", "version": _package_version(), "extensions": []})

    def v1_models(self) -> Response:
        return json_response({"models": [self.backend.name]})

    def v1_model(self, name: str) -> Response:
        return self._guarded(lambda: self._model_status(name, None))

    def model_ready(self, name: str, version: str | None = None) -> Response:
        return self._guarded(lambda: self._model_status(name, version))

    def model_metadata(self, name: str, version: str | None = None) -> Response:
        def answer() -> Response:
            self._check_name(name, version)
            return json_response(self.backend.metadata())  # NotReady until this worker loaded

        return self._guarded(answer)

    def _model_status(self, name: str, version: str | None) -> Response:
        self._check_name(name, version)
        if self.backend.is_ready():
            return json_response({"name": name, "ready": True})
        return json_response({"name": name, "ready": False,
                              "error": self.backend.not_ready_reason()}, 503)

    # --- inference -----------------------------------------------------------------------------
    def v1_predict(self, name: str) -> Response:
        return self._instrumented("v1", lambda: self._v1_predict(name))

    def _v1_predict(self, name: str) -> Response:
        self._check_name(name, None)
        request_id = _request_id(request.headers.get(REQUEST_ID_HEADER))
        signature = self._ready_signature()
        body = self._body()
        features = v1.parse_predict_request(body, signature)
        result = self.backend.infer(features, return_steps=_return_steps())
        if self.shadow is not None:
            self.shadow.offer(request.environ, "v1", body, result.outputs[0], signature.kind)
        steps = {step: tensors[0][1] for step, tensors in (result.steps or {}).items()}
        payload = v1.predict_response(result.outputs[0][1], steps if result.steps else None)
        tokens = self._feedback_tokens(result)
        if tokens is not None:
            payload["feedback_tokens"] = tokens
        if result.step_tokens:
            payload["step_feedback_tokens"] = result.step_tokens
        return json_response(payload, headers={REQUEST_ID_HEADER: request_id})

    def v2_infer(self, name: str, version: str | None = None) -> Response:
        environ = request.environ
        return self._instrumented("v2", lambda: self._v2_infer(name, version, environ), environ)

    def infer_fast_path(self, flask_app: Callable) -> Callable:
        """WSGI app: POST v2 infer straight to `v2_infer`'s handler, all else to `flask_app`."""

        def serve(environ: dict, start_response: Callable):
            if environ.get("REQUEST_METHOD") == "POST":
                # werkzeug routes on PATH_INFO re-decoded as UTF-8 (WSGI hands it over as latin-1)
                path = environ.get("PATH_INFO", "").encode("latin-1").decode("utf-8", "replace")
                match = _V2_INFER_PATH.fullmatch(path)
                if match is not None:
                    name, version = match.groups()
                    response = self._instrumented(
                        "v2", lambda: self._v2_infer(name, version, environ), environ)
                    return response(environ, start_response)
            return flask_app(environ, start_response)

        return serve

    def _v2_infer(self, name: str, version: str | None, environ: dict) -> Response:
        self._check_name(name, version)
        signature = self._ready_signature()
        body = read_body(environ, self.max_body_bytes)
        parsed = v2.parse_infer_request(body, request_header(environ, BINARY_HEADER))
        header_id = request_header(environ, REQUEST_ID_HEADER)
        if header_id:
            _request_id(header_id)  # a bad header is refused even when the body has an id
        request_id = _request_id(parsed.id or header_id)
        return_steps = parsed.parameters.get("return_steps", False)
        if not isinstance(return_steps, bool):
            raise InvalidInput("parameters.return_steps must be true or false")
        features = v2.features_from_inputs(parsed.inputs, signature)
        result = self.backend.infer(features, parsed.outputs, return_steps)
        if self.shadow is not None:
            self.shadow.offer(environ, "v2", body, result.outputs[0], signature.kind)
        outputs = [v2.output_tensor(n, a) for n, a in result.outputs]
        for step, tensors in (result.steps or {}).items():
            outputs += [v2.output_tensor(f"{step}.{n}", a) for n, a in tensors]
        payload = v2.infer_response(model_name=self.backend.name, model_version=self.backend.version,
                                    request_id=request_id, outputs=outputs)
        tokens = self._feedback_tokens(result)
        if tokens is not None:
            payload["parameters"] = {"feedback_tokens": tokens}
        if result.step_tokens:
            payload.setdefault("parameters", {})["step_feedback_tokens"] = result.step_tokens
        return json_response(payload, headers={REQUEST_ID_HEADER: request_id})

    def _instrumented(self, protocol: str, handler: Callable[[], Response],
                      environ: dict | None = None) -> Response:
        started = time.perf_counter()
        self.metrics.inflight.inc()
        try:
            with self.backend.requests_in_flight:
                response = self._guarded(handler, environ)
        finally:
            self.metrics.inflight.dec()
        code = c.CODE_NOT_READY if getattr(response, "not_ready", False) else response.status_code
        self.metrics.observe_request(protocol, code, time.perf_counter() - started)
        return response

    def _guarded(self, handler: Callable[[], Response], environ: dict | None = None) -> Response:
        try:
            return handler()
        except NotReady as error:  # a worker still loading: not a server error (label not_ready)
            response = error_response(error)
            response.not_ready = True
            return response
        except ServingError as error:
            return error_response(error)
        except Exception:  # a bug in the server: answer 500, keep the worker alive
            environ = environ if environ is not None else request.environ
            log.exception("Unexpected error in %s %s", environ.get("REQUEST_METHOD"),
                          environ.get("PATH_INFO"))
            return error_response(ServingError("internal server error"))

    # --- feedback ------------------------------------------------------------------------------
    def feedback_post(self, name: str, version: str | None = None) -> Response:
        response = self._guarded(lambda: self._feedback(name, version))
        if self.feedback is not None:
            self.feedback.counters.calls.labels(self.backend.name, self.backend.version,
                                                str(response.status_code)).inc()
        return response

    def _feedback(self, name: str, version: str | None) -> Response:
        self._check_name(name, version)
        forward = getattr(self.backend, "forward_feedback", None)
        if forward is not None:  # a pipeline: the step that made the prediction scores it
            status, answer = forward(json_object(self._body()))
            return json_response(answer, status)
        if self.feedback is None:
            raise NotFound("feedback is not enabled on this server (no MODELOPS_FEEDBACK_KEY)")
        model = getattr(self.backend, "model", None)
        if model is None:
            raise NotFound("feedback needs a loaded model")
        classes = getattr(model.estimator, "classes_", None)
        known = tuple(_class_text(v) for v in classes.tolist()) if classes is not None else None
        return json_response(self.feedback.record(json_object(self._body()), known))

    def _feedback_tokens(self, result: InferResult) -> list[str] | None:
        """This model's tokens for the answer's rows; a pipeline's are its last step's."""
        if result.step_tokens is not None:
            return result.step_tokens.get(self.backend.last_step)
        model = getattr(self.backend, "model", None)
        if self.feedback is None or model is None:
            return None
        name, array = result.outputs[0]
        try:
            return self.feedback.tokens(model.signature.kind, model.labels(array, name))
        except Exception:  # feedback is best effort; the prediction itself succeeded
            log.warning("Could not make feedback tokens", exc_info=True)
            return None

    # --- metrics and documents ----------------------------------------------------------------
    def metrics_text(self) -> Response:
        return Response(self.metrics.render(), mimetype=None, content_type=CONTENT_TYPE_LATEST)

    def openapi_json(self) -> Response:
        return Response(self.openapi.json_text, mimetype="application/json")

    def openapi_yaml(self) -> Response:
        return Response(self.openapi.yaml_text, mimetype="application/yaml")

    # --- helpers ---------------------------------------------------------------------------------
    def _check_name(self, name: str, version: str | None) -> None:
        if name != self.backend.name:
            raise NotFound(f"model {name!r} is not served here; this server serves {self.backend.name!r}")
        if version is not None and version != self.backend.version:
            raise NotFound(f"model {name!r} has no version {version!r}; "
                           f"it serves version {self.backend.version!r}")

    def _ready_signature(self):
        # Only this worker's model matters here (is_ready() also waits for the other workers).
        return self.backend.signature

    def _body(self) -> bytes:
        return read_body(request.environ, self.max_body_bytes)


def _return_steps() -> bool:
    """The v1 predict route's `steps` query parameter: "true", "false" or absent."""
    value = request.args.get("steps", "false")
    if value not in ("true", "false"):
        raise InvalidInput(f"query parameter steps must be true or false, got {value[:40]!r}")
    return value == "true"


def _request_id(given: str | None) -> str:
    if given is None or given == "":
        return uuid.uuid4().hex
    if len(given) > MAX_REQUEST_ID:
        raise InvalidInput(f"request id is longer than {MAX_REQUEST_ID} characters")
    if not _HEADER_VALUE.fullmatch(given):  # it is echoed in the X-Request-Id header
        raise InvalidInput("request id must be text that fits an HTTP header: no control "
                           "characters, nothing beyond Latin-1")
    return given


def _class_text(value: object) -> str:
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return str(value)


@cache
def _package_version() -> str:
    try:
        return package_metadata.version("modelops")
    except package_metadata.PackageNotFoundError:
        return "unknown"
