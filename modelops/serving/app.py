"""Build the Flask app for a mode: wire settings, metrics, backend, feedback and routes.

build_app is what each gunicorn worker calls (model or pipeline mode); tests call
build_model_app / build_pipeline_app with a fresh CollectorRegistry and their own loader.
Every error, including Flask's own 404/405, is answered as `{"error": "..."}`.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from functools import partial
from pathlib import Path

from flask import Flask, Response, request
from prometheus_client import CollectorRegistry
from werkzeug.exceptions import HTTPException, MethodNotAllowed

from modelops.serving.artifact import artifact_format, read_verified, resolve_local_path
from modelops.serving.dataplane import ModelBackend
from modelops.serving.failures import StartupFailure
from modelops.serving.feedback import SEEN_FILENAME, Feedback, QualityCounters, SeenSet
from modelops.serving.metrics import ServingMetrics, ShadowMetrics, StepMetrics
from modelops.serving.model import LoadedModel, load_model
from modelops.serving.openapi import OpenApiDocument
from modelops.serving.pinned import PinnedVersions
from modelops.serving.routes import Routes
from modelops.serving.settings import ServingSettings
from modelops.serving.shadow import Shadow
from modelops.serving.shared_dir import WorkerReadiness

BACKEND_KEY = "modelops.backend"


def create_app(backend, metrics: ServingMetrics, *, max_body_bytes: int,
               feedback: Feedback | None = None, shadow: Shadow | None = None) -> Flask:
    """The Flask app serving `backend` (a ModelBackend or PipelineBackend)."""
    app = Flask("modelops.serving")
    routes = Routes(backend, metrics, max_body_bytes=max_body_bytes, feedback=feedback,
                    openapi=OpenApiDocument.load(), shadow=shadow)
    routes.register(app)
    app.wsgi_app = routes.infer_fast_path(app.wsgi_app)
    app.register_error_handler(HTTPException, _http_error)
    app.extensions[BACKEND_KEY] = backend
    return app


def _http_error(error: HTTPException) -> Response:
    if isinstance(error, MethodNotAllowed):
        message = f"{request.method} is not allowed on {request.path}; use {', '.join(error.valid_methods or [])}"
    elif error.code == 404:
        message = f"no route {request.path}"
    else:
        message = f"{error.name}: {error.description}"
    response = error.get_response()
    response.set_data(json.dumps({"error": message}))
    response.content_type = "application/json"
    return response


def load_from_settings(settings: ServingSettings) -> LoadedModel:
    """Read and verify the artifact bytes, then deserialise exactly those bytes."""
    path = resolve_local_path(settings.artifact_uri, artifact_dir=settings.artifact_dir)
    fmt = artifact_format(path, settings.artifact_format)
    data, sha256 = read_verified(path, settings.artifact_sha256)
    return load_model(data, fmt=fmt, method=settings.method, sha256=sha256,
                      trusted_types=settings.skops_trusted_types,
                      version_policy=settings.sklearn_version_policy)


def build_model_app(settings: ServingSettings, *, registry: CollectorRegistry | None = None,
                    load: Callable[[], LoadedModel] | None = None,
                    on_failure: Callable[[StartupFailure], None] | None = None,
                    feedback_path: Path | None = None) -> Flask:
    """Model mode. With `on_failure` the model loads in the background (gunicorn workers);
    without, it loads before this returns and a StartupFailure propagates. Feedback is kept in
    `feedback_path` (default: the shared metrics directory; none there = feedback off)."""
    metrics = ServingMetrics(model=settings.model_name, version=settings.model_version,
                             registry=registry, multiprocess_dir=settings.metrics_dir)
    readiness = (WorkerReadiness(settings.metrics_dir, settings.workers)
                 if settings.metrics_dir is not None else None)
    backend = ModelBackend(settings, metrics, load=load or partial(load_from_settings, settings),
                           readiness=readiness)
    if feedback_path is None and settings.metrics_dir is not None:
        feedback_path = settings.metrics_dir.parent / SEEN_FILENAME  # kept across restarts
    feedback = _feedback(settings, metrics, feedback_path)
    if on_failure is None:
        backend.load()
    else:
        backend.load_in_background(on_failure)
    shadow = None
    if settings.pod_annotations_file is not None:  # the operator's shadow phase switches it on
        shadow = Shadow(settings, ShadowMetrics(model=settings.model_name,
                                                version=settings.model_version,
                                                registry=metrics.registry)).start()
    app = create_app(backend, metrics, max_body_bytes=settings.max_body_bytes, feedback=feedback,
                     shadow=shadow)
    app.wsgi_app = PinnedVersions(app.wsgi_app, name=settings.model_name,
                                  version=settings.model_version, shadow=shadow,
                                  max_body_bytes=settings.max_body_bytes,
                                  registry=metrics.registry)
    return app


def _feedback(settings: ServingSettings, metrics: ServingMetrics,
              path: Path | None) -> Feedback | None:
    if not settings.feedback_key or path is None or settings.feedback_window == 0:
        return None
    return Feedback(key=settings.feedback_key.encode(), model=settings.model_name,
                    version=settings.model_version,
                    seen=SeenSet(path, capacity=settings.feedback_seen_capacity),
                    counters=QualityCounters(settings.model_name, metrics.registry),
                    horizon_seconds=settings.feedback_horizon_seconds)


def build_pipeline_app(settings: ServingSettings, *, registry: CollectorRegistry | None = None) -> Flask:
    """Pipeline mode: the router for a ModelPipeline, served under the pipeline's name."""
    from modelops.serving.router import PipelineBackend  # imports requests: pipeline mode only

    metrics = ServingMetrics(model=settings.pipeline_name, version=settings.model_version,
                             registry=registry, multiprocess_dir=settings.metrics_dir)
    backend = PipelineBackend(settings, StepMetrics(pipeline=settings.pipeline_name,
                                                    registry=metrics.registry))
    return create_app(backend, metrics, max_body_bytes=settings.max_body_bytes)


def build_app(settings: ServingSettings, *, on_failure: Callable[[StartupFailure], None]) -> Flask:
    """What a gunicorn worker serves, for either mode."""
    if settings.mode == "pipeline":
        return build_pipeline_app(settings)
    return build_model_app(settings, on_failure=on_failure)
