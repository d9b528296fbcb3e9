"""The serving process's settings: one frozen dataclass, read once from the environment.

Every variable name comes from modelops.contract (the operator injects the same names). A bad
value raises StartupFailure(InvalidSettings) whose message names the variable and the allowed
range, so the operator can show it. Pure: `from_env` takes the mapping to read.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from modelops import contract as c
from modelops.serving.failures import INVALID_SETTINGS, StartupFailure

MIB = 1024 * 1024
MODES = ("model", "pipeline")
METHODS = ("predict", "predict_proba")
FORMATS = ("joblib", "skops")
VERSION_POLICIES = ("refuse", "warn")
STEP_INPUTS = ("previous", "features+previous")

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,252}$")
_VERSION = re.compile(r"^[A-Za-z0-9._+-]{0,128}$")
_SHA256 = re.compile(r"^[0-9a-f]{64}$")


def invalid(message: str) -> StartupFailure:
    return StartupFailure(INVALID_SETTINGS, message)


@dataclass(frozen=True)
class PipelineStep:
    """One step of a ModelPipeline as the router sees it."""

    name: str
    model: str
    url: str
    """Base URL of the step Model's Service, e.g. http://house-price.demo.svc:80."""
    input: str = "previous"
    """`previous`: the step's input is the previous step's output; `features+previous`: the
    request's original features with the previous output appended as new columns."""


@dataclass(frozen=True)
class ServingSettings:
    """Everything the serving process needs, with the documented defaults."""

    mode: str = "model"
    model_name: str = ""
    model_version: str = ""
    artifact_uri: str = ""
    artifact_sha256: str = ""
    """Lower-case hex; required for http(s) artifacts, checked before deserialising."""
    artifact_format: str = ""
    """joblib | skops; empty = from the file extension."""
    artifact_dir: Path = Path(c.ARTIFACT_MOUNT)
    method: str = "predict"
    host: str = "0.0.0.0"
    port: int = c.DEFAULT_PORT
    workers: int = 1
    threads: int = 4
    max_body_bytes: int = 10 * MIB
    """Limit on a request body, after gzip/deflate decompression."""
    termination_log: Path = Path(c.DEFAULT_TERMINATION_LOG)
    skops_trusted_types: tuple[str, ...] = ()
    """Types trusted beyond skops' defaults; from configuration, never from the artifact."""
    sklearn_version_policy: str = "refuse"
    download_timeout_seconds: float = 30.0
    """Connect and per-read timeout for http(s) artifact downloads."""
    download_max_bytes: int = 512 * MIB
    batch_max_size: int = 1
    """Adaptive batching groups up to this many rows per predict call; 0 or 1 = off."""
    batch_max_wait_ms: float = 5.0
    feedback_window: int = 1000
    """0 turns feedback off (kept for compatibility; any other value: on when a key is set)."""
    feedback_key: str = ""
    """HMAC key for feedback tokens (MODELOPS_FEEDBACK_KEY); empty = no tokens, no feedback."""
    feedback_horizon_seconds: float = 86400.0
    feedback_seen_capacity: int = 1_000_000
    """Scored tokens a pod remembers (replay protection); about 100 bytes each on disk."""
    graceful_timeout_seconds: float = 30.0
    metrics_dir: Path | None = None
    """prometheus-client's multiprocess directory; None outside gunicorn (tests)."""
    pipeline_name: str = ""
    pipeline_steps: tuple[PipelineStep, ...] = ()
    pipeline_timeout_seconds: float = 5.0
    max_connection_age_seconds: float = 5.0
    """A keep-alive connection is answered `Connection: close` after this long (less up to 10 %
    jitter), so clients follow the Service even when the kubelet is late; 0 = never."""
    pod_annotations_file: Path | None = None
    """The downward-API annotations file that switches shadow traffic on (shadow.py)."""
    shadow_queue: int = 32
    """Copies waiting per worker; more are shed."""
    shadow_senders: int = 2
    """Copies in flight per worker (one sender thread each)."""
    shadow_timeout_seconds: float = 1.0
    """Total deadline of one copy, from the user's answer to the candidate's."""

    @property
    def served_name(self) -> str:
        """The name in the routes: the model's, or the pipeline's in pipeline mode."""
        return self.pipeline_name if self.mode == "pipeline" else self.model_name

    @property
    def batching(self) -> bool:
        return self.batch_max_size > 1

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> ServingSettings:
        """Read and validate every setting; raise StartupFailure(InvalidSettings) on bad input."""
        read = _Reader(environ)
        mode = read.choice(c.ENV_MODE, "model", MODES)
        settings = cls(
            mode=mode,
            model_version=read.pattern(c.ENV_MODEL_VERSION, "", _VERSION, "letters, digits, ._+-"),
            host=read.text(c.ENV_HOST, "0.0.0.0"),
            port=read.integer(c.ENV_PORT, c.DEFAULT_PORT, 1, 65535),
            workers=read.integer(c.ENV_WORKERS, 1, 1, 64),
            threads=read.integer(c.ENV_THREADS, 4, 1, 256),
            max_body_bytes=read.integer(c.ENV_MAX_BODY_BYTES, 10 * MIB, 1024, 1024 * MIB),
            termination_log=Path(read.text(c.ENV_TERMINATION_LOG, c.DEFAULT_TERMINATION_LOG)),
            batch_max_size=read.integer(c.ENV_BATCH_MAX_SIZE, 1, 0, 4096),
            batch_max_wait_ms=read.number(c.ENV_BATCH_MAX_WAIT_MS, 5.0, 0.0, 10_000.0),
            feedback_window=read.integer(c.ENV_FEEDBACK_WINDOW, 1000, 0, 1_000_000),
            feedback_key=_feedback_key(read),
            feedback_horizon_seconds=read.number(c.ENV_FEEDBACK_HORIZON, 86400.0, 1.0, 30 * 86400.0),
            feedback_seen_capacity=read.integer(c.ENV_FEEDBACK_SEEN_CAPACITY, 1_000_000, 1,
                                                100_000_000),
            graceful_timeout_seconds=read.number(c.ENV_GRACEFUL_TIMEOUT, 30.0, 0.0, 3600.0),
            metrics_dir=Path(environ[c.ENV_METRICS_DIR]) if environ.get(c.ENV_METRICS_DIR) else None,
            max_connection_age_seconds=read.number(c.ENV_MAX_CONNECTION_AGE, 5.0, 0.0, 86400.0),
            pod_annotations_file=_optional_path(read, c.ENV_POD_ANNOTATIONS_FILE),
            shadow_queue=read.integer(c.ENV_SHADOW_QUEUE, 32, 1, 100_000),
            shadow_senders=read.integer(c.ENV_SHADOW_SENDERS, 2, 1, 64),
            shadow_timeout_seconds=read.number(c.ENV_SHADOW_TIMEOUT, 1.0, 0.01, 600.0),
            **(_pipeline_fields(read) if mode == "pipeline" else _model_fields(read)),
        )
        return settings


def _optional_path(read: _Reader, name: str) -> Path | None:
    value = read.text(name, "")
    return Path(value) if value else None


def _feedback_key(read: _Reader) -> str:
    key = read.text(c.ENV_FEEDBACK_KEY, "")
    if key and len(key) < 32:
        raise invalid(f"{c.ENV_FEEDBACK_KEY} must be at least 32 characters")
    return key


def _model_fields(read: _Reader) -> dict:
    uri = read.text(c.ENV_ARTIFACT_URI, "")
    sha256 = read.pattern(c.ENV_ARTIFACT_SHA256, "", _SHA256, "64 hex characters", lower=True)
    if not uri:
        raise invalid(f"{c.ENV_ARTIFACT_URI} is required in model mode")
    if urlsplit(uri).scheme.lower() in ("http", "https", "s3") and not sha256:
        raise invalid(f"{c.ENV_ARTIFACT_SHA256} is required for an http(s) or s3 artifact")
    trusted = read.text(c.ENV_SKOPS_TRUSTED_TYPES, "")
    return {
        "model_name": read.pattern(c.ENV_MODEL_NAME, "", _NAME, "a DNS-style name", required=True),
        "artifact_uri": uri,
        "artifact_sha256": sha256,
        "artifact_format": read.choice(c.ENV_ARTIFACT_FORMAT, "", ("", *FORMATS)),
        "artifact_dir": Path(read.text(c.ENV_ARTIFACT_DIR, c.ARTIFACT_MOUNT)),
        "method": read.choice(c.ENV_METHOD, "predict", METHODS),
        "skops_trusted_types": tuple(t.strip() for t in trusted.split(",") if t.strip()),
        "sklearn_version_policy": read.choice(c.ENV_SKLEARN_VERSION_POLICY, "refuse", VERSION_POLICIES),
        "download_timeout_seconds": read.number(c.ENV_DOWNLOAD_TIMEOUT, 30.0, 0.1, 3600.0),
        "download_max_bytes": read.integer(c.ENV_DOWNLOAD_MAX_BYTES, 512 * MIB, 1, 1 << 40),
    }


def _pipeline_fields(read: _Reader) -> dict:
    return {
        "pipeline_name": read.pattern(c.ENV_PIPELINE_NAME, "", _NAME, "a DNS-style name", required=True),
        "pipeline_steps": parse_steps(read.text(c.ENV_PIPELINE_STEPS, "")),
        "pipeline_timeout_seconds": read.number(c.ENV_PIPELINE_TIMEOUT, 5.0, 0.001, 3600.0),
    }


def parse_steps(text: str) -> tuple[PipelineStep, ...]:
    """Parse MODELOPS_PIPELINE_STEPS (a JSON list of {name, model, url, input})."""
    var = c.ENV_PIPELINE_STEPS
    try:
        raw = json.loads(text)
    except ValueError as error:
        raise invalid(f"{var} is not valid JSON: {error}") from None
    if not isinstance(raw, list) or not raw:
        raise invalid(f"{var} must be a non-empty JSON list of steps")
    steps = tuple(_parse_step(item, index) for index, item in enumerate(raw))
    names = [step.name for step in steps]
    duplicates = sorted({name for name in names if names.count(name) > 1})
    if duplicates:
        raise invalid(f"{var}: step names must be unique; repeated: {', '.join(duplicates)}")
    if steps[0].input != "previous":
        raise invalid(f"{var}[0].input: the first step has no previous step; use 'previous'")
    return steps


def _parse_step(item: object, index: int) -> PipelineStep:
    where = f"{c.ENV_PIPELINE_STEPS}[{index}]"
    if not isinstance(item, dict):
        raise invalid(f"{where} must be an object with name, model, url")
    fields = {}
    for key in ("name", "model", "url"):
        value = item.get(key)
        if not isinstance(value, str) or not value:
            raise invalid(f"{where}.{key} must be a non-empty string")
        fields[key] = value
    for key in ("name", "model"):
        if not _NAME.match(fields[key]):
            raise invalid(f"{where}.{key} {fields[key]!r} must be a DNS-style name")
    url = urlsplit(fields["url"])
    if url.scheme not in ("http", "https") or not url.netloc:
        raise invalid(f"{where}.url must be http(s)://host[:port], got {fields['url']!r}")
    step_input = item.get("input", "previous")
    if step_input not in STEP_INPUTS:
        raise invalid(f"{where}.input must be one of {', '.join(STEP_INPUTS)}, got {step_input!r}")
    return PipelineStep(fields["name"], fields["model"], fields["url"].rstrip("/"), step_input)


class _Reader:
    """Typed access to environment variables, each error naming the variable."""

    def __init__(self, environ: Mapping[str, str]) -> None:
        self._environ = environ

    def text(self, name: str, default: str) -> str:
        value = self._environ.get(name, "").strip()
        return value or default

    def pattern(self, name: str, default: str, regex: re.Pattern, what: str, *,
                required: bool = False, lower: bool = False) -> str:
        value = self.text(name, default)
        if lower:
            value = value.lower()
        if required and not value:
            raise invalid(f"{name} is required")
        if value and not regex.match(value):
            raise invalid(f"{name} must be {what}, got {value!r}")
        return value

    def choice(self, name: str, default: str, allowed: tuple[str, ...]) -> str:
        value = self.text(name, default)
        if value not in allowed:
            shown = ", ".join(a for a in allowed if a)
            raise invalid(f"{name} must be one of {shown}, got {value!r}")
        return value

    def integer(self, name: str, default: int, low: int, high: int) -> int:
        raw = self.text(name, str(default))
        try:
            value = int(raw)
        except ValueError:
            value = None
        if value is None or not low <= value <= high:
            raise invalid(f"{name} must be an integer from {low} to {high}, got {raw!r}")
        return value

    def number(self, name: str, default: float, low: float, high: float) -> float:
        raw = self.text(name, str(default))
        try:
            value = float(raw)
        except ValueError:
            value = float("nan")
        if not low <= value <= high:  # also false for NaN
            raise invalid(f"{name} must be a number from {low:g} to {high:g}, got {raw!r}")
        return value
