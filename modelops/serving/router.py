"""Pipeline mode: the router that chains a ModelPipeline's steps over HTTP.

For each request it calls every step's `{url}/v2/models/{model}/infer` in order, within one
deadline (MODELOPS_PIPELINE_TIMEOUT_SECONDS for the whole chain). A step's first output feeds
the next step: `previous` makes its predictions the next rows (one column, or the probability
row), `features+previous` appends them to the request's original features as new columns. The
last step's outputs are the answer; on request, every step's outputs too. Feedback tokens that
steps return are passed on (the last step's as the pipeline's own), and `forward_feedback` sends
a feedback body to the step it names (`"step"`, default the last one), which scores it with its
own key: the router holds no key and no state. A step that answers
with an error or cannot be reached is a 502 naming the step, a timeout a 504; when the FIRST step
refuses the client's own input (4xx), that is passed on as a 400. Counts and times every step
call. Network I/O through one requests.Session per thread.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Sequence

import numpy as np
import requests

from modelops.serving import v2
from modelops.serving.dataplane import InFlight, InferResult, Tensors
from modelops.serving.errors import InvalidInput, StepFailed, StepTimeout
from modelops.serving.metrics import StepMetrics
from modelops.serving.model import Signature
from modelops.serving.settings import PipelineStep, ServingSettings
from modelops.serving.tensors import BYTES, NUMERIC_DTYPES

PLATFORM = "modelops-pipeline"


class PipelineBackend:
    """Serves a pipeline under its own name; ready as soon as it runs (steps are per request)."""

    platform = PLATFORM
    signature = Signature.generic()

    def __init__(self, settings: ServingSettings, metrics: StepMetrics) -> None:
        self.name = settings.pipeline_name
        self.version = settings.model_version
        self._steps = settings.pipeline_steps
        self._timeout = settings.pipeline_timeout_seconds
        self._metrics = metrics
        self._local = threading.local()
        self.requests_in_flight = InFlight()  # the routes' count; a pipeline does not batch

    @property
    def last_step(self) -> str:
        return self._steps[-1].name

    def is_ready(self) -> bool:
        return True

    def not_ready_reason(self) -> str:
        return ""

    def metadata(self) -> dict:
        metadata = v2.model_metadata(self.name, self.version, self.signature, self.platform)
        metadata["steps"] = [{"name": s.name, "model": s.model, "input": s.input} for s in self._steps]
        return metadata

    def infer(self, features: np.ndarray, outputs: Sequence[str] = (),
              return_steps: bool = False) -> InferResult:
        """Run the chain; `outputs` are asked of the last step only."""
        deadline = time.monotonic() + self._timeout
        results: dict[str, Tensors] = {}
        tokens: dict[str, list[str]] = {}
        previous: Tensors = []
        for index, step in enumerate(self._steps):
            rows = features if index == 0 else _step_rows(step, features, previous, self._steps[index - 1])
            last = index == len(self._steps) - 1
            previous, step_tokens = self._call(step, rows, deadline, outputs if last else (),
                                               first=index == 0)
            results[step.name] = previous
            if step_tokens is not None:
                tokens[step.name] = step_tokens
        return InferResult(previous, results if return_steps else None, tokens or None)

    def forward_feedback(self, body: dict) -> tuple[int, object]:
        """(status, JSON body) of the named step's answer to the feedback in `body`."""
        step = self._feedback_step(body.pop("step", None))
        url = f"{step.url}/v2/models/{step.model}/feedback"
        try:
            response = self._session().post(url, data=json.dumps(body), timeout=self._timeout,
                                            headers={"Content-Type": "application/json"})
        except requests.Timeout:
            raise StepTimeout(f"step {step.name!r} did not answer the feedback within "
                              f"{self._timeout:g} s") from None
        except requests.RequestException as error:
            raise StepFailed(f"step {step.name!r} at {url} is unreachable: {type(error).__name__}") from None
        try:
            answer = response.json()
        except ValueError:
            raise StepFailed(f"step {step.name!r} answered the feedback with HTTP "
                             f"{response.status_code} and no JSON") from None
        return response.status_code, answer

    def _feedback_step(self, name: object) -> PipelineStep:
        if name is None:
            return self._steps[-1]
        for step in self._steps:
            if step.name == name:
                return step
        known = ", ".join(s.name for s in self._steps)
        raise InvalidInput(f"'step' must name a step of pipeline {self.name!r} ({known}), "
                           f"not {name!r}")

    def _session(self) -> requests.Session:
        session = getattr(self._local, "session", None)
        if session is None:
            session = self._local.session = requests.Session()
        return session

    def _call(self, step: PipelineStep, rows: np.ndarray, deadline: float,
              outputs: Sequence[str], *, first: bool) -> tuple[Tensors, list[str] | None]:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise StepTimeout(f"pipeline timeout of {self._timeout:g} s reached before step {step.name!r}")
        url = f"{step.url}/v2/models/{step.model}/infer"
        started = time.perf_counter()
        try:
            response = self._session().post(url, data=_request_body(rows, outputs), timeout=remaining,
                                            headers={"Content-Type": "application/json"})
        except requests.Timeout:
            self._metrics.observe(step.name, 504, time.perf_counter() - started)
            raise StepTimeout(f"step {step.name!r} (model {step.model!r}) did not answer within "
                              f"{remaining:.3g} s") from None
        except requests.RequestException as error:
            self._metrics.observe(step.name, 502, time.perf_counter() - started)
            raise StepFailed(f"step {step.name!r} at {url} is unreachable: {type(error).__name__}") from None
        self._metrics.observe(step.name, response.status_code, time.perf_counter() - started)
        if response.status_code != 200:
            message = _error_message(response)
            if first and 400 <= response.status_code < 500 and response.status_code != 404:
                raise InvalidInput(f"step {step.name!r} refused the input: {message}")
            raise StepFailed(f"step {step.name!r} (model {step.model!r}) answered HTTP "
                             f"{response.status_code}: {message}")
        return _response_tensors(step, response)


def _request_body(rows: np.ndarray, outputs: Sequence[str]) -> str:
    request: dict = {"inputs": [{"name": "input-0", "shape": list(rows.shape), "datatype": "FP64",
                                 "data": rows.reshape(-1).tolist()}]}
    if outputs:
        request["outputs"] = [{"name": name} for name in outputs]
    return json.dumps(request)


def _error_message(response: requests.Response) -> str:
    try:
        error = response.json().get("error")
    except (ValueError, AttributeError):
        error = None
    return " ".join(str(error or response.text[:200] or response.reason).split())


def _response_tensors(step: PipelineStep, response: requests.Response
                      ) -> tuple[Tensors, list[str] | None]:
    """The step's outputs and its feedback tokens (None when it gave none)."""
    try:
        answer = response.json()
        tensors = [(out["name"], _array(out)) for out in answer["outputs"]]
    except (ValueError, KeyError, TypeError) as error:
        raise StepFailed(f"step {step.name!r} returned an invalid v2 response: {error}") from None
    if not tensors:
        raise StepFailed(f"step {step.name!r} returned no outputs")
    tokens = (answer.get("parameters") or {}).get("feedback_tokens")
    valid = isinstance(tokens, list) and all(isinstance(t, str) for t in tokens)
    return tensors, tokens if valid else None


def _array(output: dict) -> np.ndarray:
    datatype, shape = output["datatype"], output["shape"]
    if datatype == BYTES:
        values = np.empty(len(output["data"]), dtype=object)
        values[:] = output["data"]
        return values.reshape(shape)
    return np.array(output["data"], dtype=NUMERIC_DTYPES[datatype]).reshape(shape)


def _step_rows(step: PipelineStep, features: np.ndarray, previous: Tensors,
               previous_step: PipelineStep) -> np.ndarray:
    """The rows for `step`: the previous step's first output, alone or after the features."""
    name, prediction = previous[0]
    if prediction.ndim == 0 or prediction.size == 0:
        raise StepFailed(f"step {previous_step.name!r} returned an empty {name!r}")
    if prediction.dtype.kind not in "biuf":
        raise StepFailed(f"step {previous_step.name!r} returned {name!r} as text; "
                         f"step {step.name!r} needs numbers")
    columns = prediction.astype(np.float64).reshape(len(prediction), -1)
    if step.input == "previous":
        return columns
    if len(columns) != len(features):
        raise StepFailed(f"step {previous_step.name!r} returned {len(columns)} rows for "
                         f"{len(features)} input rows")
    return np.concatenate([features, columns], axis=1)
