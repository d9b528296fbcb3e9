"""The model data plane: loading, readiness, inference and model errors, with no HTTP.

One ModelBackend per worker. It loads the model (in a background thread under gunicorn, so
liveness answers while readiness stays false until this worker has its model), optionally batches
concurrent requests, and turns an exception raised inside the model into ModelFailed (500),
counted in model_errors_total. The router's PipelineBackend offers the same interface (name,
version, is_ready, signature, metadata, infer), so the routes serve both.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from modelops.serving import v2
from modelops.serving.batching import AdaptiveBatcher
from modelops.serving.errors import InvalidInput, ModelFailed, NotReady, PayloadTooLarge
from modelops.serving.failures import StartupFailure
from modelops.serving.metrics import ServingMetrics
from modelops.serving.model import LoadedModel, Signature
from modelops.serving.settings import ServingSettings
from modelops.serving.shared_dir import WorkerReadiness

log = logging.getLogger(__name__)

MAX_OUTPUT_VALUES = 4_000_000
"""An answer holds at most this many values (rows x output width, over every output)."""

Tensors = list[tuple[str, np.ndarray]]


class InFlight:
    """Inference requests between arrival and answer in this worker (a thread-safe count).

    The routes enter it for every inference request, before the body is read and parsed, so
    the batcher knows which requests may still join a batch.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.count = 0

    def __enter__(self) -> None:
        with self._lock:
            self.count += 1

    def __exit__(self, *exc_info: object) -> None:
        with self._lock:
            self.count -= 1


@dataclass(frozen=True)
class InferResult:
    outputs: Tensors
    steps: dict[str, Tensors] | None = None
    """Pipeline mode, when asked: every step's outputs by step name."""
    step_tokens: dict[str, list[str]] | None = None
    """Pipeline mode: each step's feedback tokens (signed by that step's Model), by step name."""


class ModelBackend:
    """Serves the one model of this process."""

    platform = v2.PLATFORM

    def __init__(self, settings: ServingSettings, metrics: ServingMetrics, *,
                 load: Callable[[], LoadedModel], readiness: WorkerReadiness | None = None) -> None:
        self.name = settings.model_name
        self.version = settings.model_version
        self._settings = settings
        self._metrics = metrics
        self._load = load
        self._readiness = readiness
        self._model: LoadedModel | None = None
        self._batcher: AdaptiveBatcher | None = None
        self._in_flight = 0
        """Requests inside infer() (direct callers, such as tests, count here)."""
        self.requests_in_flight = InFlight()
        self._lock = threading.Lock()

    def load(self) -> None:
        """Load the model now; raises StartupFailure. Readiness turns true when it returns."""
        started = time.perf_counter()
        model = self._load()
        self._metrics.model_loaded(seconds=time.perf_counter() - started, sha256=model.sha256,
                                   fmt=model.format)
        if self._settings.batching:
            self._batcher = AdaptiveBatcher(
                lambda output, rows: model.predict(rows, output),
                max_size=self._settings.batch_max_size,
                max_wait_seconds=self._settings.batch_max_wait_ms / 1000.0,
                in_flight=lambda: max(self._in_flight, self.requests_in_flight.count),
            )
        self._model = model
        if self._readiness is not None:
            self._readiness.mark_ready(os.getpid())
        log.info("Loaded model %s version %s (%s, sha256 %s) in %.2f s", self.name, self.version,
                 model.format, model.sha256, time.perf_counter() - started)

    def load_in_background(self, on_failure: Callable[[StartupFailure], None]) -> threading.Thread:
        """Start loading in a thread; a StartupFailure goes to `on_failure` (which may exit)."""

        def run() -> None:
            try:
                self.load()
            except StartupFailure as failure:
                on_failure(failure)

        thread = threading.Thread(target=run, name="modelops-model-loader", daemon=True)
        thread.start()
        return thread

    @property
    def model(self) -> LoadedModel | None:
        return self._model

    def is_ready(self) -> bool:
        """This worker has its model, and so does every other worker of the pod."""
        if self._model is None:
            return False
        return self._readiness is None or self._readiness.all_ready()

    def not_ready_reason(self) -> str:
        if self._model is None:
            return f"model {self.name!r} is still loading"
        return "not every worker has loaded the model yet"

    @property
    def signature(self) -> Signature:
        return self._require_model().signature

    def metadata(self) -> dict:
        return v2.model_metadata(self.name, self.version, self.signature, self.platform)

    def infer(self, features: np.ndarray, outputs: Sequence[str] = (),
              return_steps: bool = False) -> InferResult:
        """Predict every requested output (default: the configured method) for `features`."""
        model = self._require_model()
        names = tuple(outputs) or (model.signature.default_output,)
        for name in names:
            if name not in model.signature.output_names:
                raise InvalidInput(f"unknown output {name!r}; this model has "
                                   f"{', '.join(model.signature.output_names)}")
        if len(set(names)) != len(names):
            raise InvalidInput("an output is requested more than once")
        _check_output_size(model.signature, names, len(features))
        with self._lock:
            self._in_flight += 1
        try:
            return InferResult([(name, self._predict(model, name, features)) for name in names])
        finally:
            with self._lock:
                self._in_flight -= 1

    def _predict(self, model: LoadedModel, output: str, features: np.ndarray) -> np.ndarray:
        try:
            if self._batcher is not None and isinstance(features, np.ndarray):
                return self._batcher.submit(output, features)  # DataFrames are predicted alone
            return model.predict(features, output)
        except Exception as error:  # whatever the model raises is the model's failure
            self._metrics.model_error()
            message = " ".join(str(error).split())[:300]
            log.warning("Model %s raised %s: %s", self.name, type(error).__name__, message)
            raise ModelFailed(f"the model raised {type(error).__name__}: {message}") from None

    def _require_model(self) -> LoadedModel:
        if self._model is None:
            raise NotReady(self.not_ready_reason())
        return self._model


def _check_output_size(signature: Signature, names: Sequence[str], rows: int) -> None:
    """PayloadTooLarge before predicting when the answer would exceed MAX_OUTPUT_VALUES."""
    widths = {spec.name: int(np.prod([d for d in spec.shape[1:] if d > 0] or [1]))
              for spec in signature.outputs}
    values = rows * sum(widths.get(name, 1) for name in names)
    if values > MAX_OUTPUT_VALUES:
        raise PayloadTooLarge(f"the answer would hold {values} values, more than "
                              f"{MAX_OUTPUT_VALUES}; send fewer rows per request")
