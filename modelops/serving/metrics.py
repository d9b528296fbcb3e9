"""Prometheus metrics of the serving process; the rollback monitor reads these.

Names come from modelops.contract. Under gunicorn, prometheus-client runs in multiprocess mode
(see shared_dir.py), so a counter incremented in any worker is counted exactly once and /metrics
aggregates every worker's files; gauges say how they combine (in-flight requests add up across
live workers, load time and artifact info take the live maximum). Metrics take a registry, so
tests use a fresh one. No HTTP here.
"""

from __future__ import annotations

from pathlib import Path

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client import multiprocess
from prometheus_client.registry import Collector

from modelops import contract as c

LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
                   5.0, 10.0)
PROTOCOLS = ("v1", "v2")


class ServingMetrics:
    """Request, error, in-flight, load-time and artifact metrics for one served name+version."""

    def __init__(self, *, model: str, version: str, registry: CollectorRegistry | None = None,
                 multiprocess_dir: Path | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        self._multiprocess_dir = multiprocess_dir
        self._model, self._version = model, version
        self._extra: list[Collector] = []
        self._requests = Counter(c.METRIC_REQUESTS, "Inference requests by protocol and HTTP status",
                                 ["model", "version", "protocol", "code"], registry=self.registry)
        self._request_children: dict[tuple[str, int], object] = {}
        latency = Histogram(c.METRIC_LATENCY, "Inference request duration in seconds",
                            ["model", "version", "protocol"], buckets=LATENCY_BUCKETS,
                            registry=self.registry)
        self._latency = {p: latency.labels(model, version, p) for p in PROTOCOLS}
        self._model_errors = Counter(c.METRIC_MODEL_ERRORS, "Predictions in which the model raised",
                                     ["model", "version"], registry=self.registry).labels(model, version)
        self.inflight = Gauge(c.METRIC_INFLIGHT, "Inference requests being served",
                              ["model", "version"], multiprocess_mode="livesum",
                              registry=self.registry).labels(model, version)
        self._load_seconds = Gauge(c.METRIC_LOAD_SECONDS, "Seconds to verify and load the model",
                                   ["model", "version"], multiprocess_mode="livemax",
                                   registry=self.registry).labels(model, version)
        self._artifact = Gauge(c.METRIC_ARTIFACT_INFO, "The served artifact (value is always 1)",
                               ["model", "version", "sha256", "format"], multiprocess_mode="livemax",
                               registry=self.registry)

    def observe_request(self, protocol: str, code: int | str, seconds: float) -> None:
        key = (protocol, code)
        child = self._request_children.get(key)
        if child is None:
            child = self._requests.labels(self._model, self._version, protocol, str(code))
            self._request_children[key] = child
        child.inc()
        self._latency[protocol].observe(seconds)

    def model_error(self) -> None:
        self._model_errors.inc()

    def model_loaded(self, *, seconds: float, sha256: str, fmt: str) -> None:
        self._load_seconds.set(seconds)
        self._artifact.labels(self._model, self._version, sha256, fmt).set(1)

    def add_collector(self, collector: Collector) -> None:
        """A collector computed at scrape time (e.g. model quality from the feedback store)."""
        self._extra.append(collector)
        if self._multiprocess_dir is None:
            self.registry.register(collector)

    def render(self) -> bytes:
        """The text exposition: every worker's values in multiprocess mode, else this registry's."""
        if self._multiprocess_dir is None:
            return generate_latest(self.registry)
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry, path=str(self._multiprocess_dir))
        for collector in self._extra:
            registry.register(collector)
        return generate_latest(registry)


class StepMetrics:
    """Per-step request counts and latency of a pipeline router."""

    def __init__(self, *, pipeline: str, registry: CollectorRegistry) -> None:
        self._pipeline = pipeline
        self._requests = Counter(c.METRIC_STEP_REQUESTS, "Calls to each pipeline step by status",
                                 ["pipeline", "step", "code"], registry=registry)
        self._latency = Histogram(c.METRIC_STEP_LATENCY, "Duration of calls to each pipeline step",
                                  ["pipeline", "step"], buckets=LATENCY_BUCKETS, registry=registry)

    def observe(self, step: str, code: int, seconds: float) -> None:
        self._requests.labels(self._pipeline, step, str(code)).inc()
        self._latency.labels(self._pipeline, step).observe(seconds)



class ShadowMetrics:
    """What this pod's copies to a candidate came to (shadow.py); labelled with both versions."""

    def __init__(self, *, model: str, version: str, registry: CollectorRegistry) -> None:
        self._model, self._version = model, version
        labels = ["model", "version", "candidate"]
        self._requests = Counter(c.METRIC_SHADOW_REQUESTS, "Copies of predict requests sent to "
                                 "a shadow candidate, by outcome", [*labels, "outcome"],
                                 registry=registry)
        self._rows = Counter(c.METRIC_SHADOW_ROWS, "Rows compared with a shadow candidate",
                             labels, registry=registry)
        self._disagreements = Counter(c.METRIC_SHADOW_DISAGREEMENTS, "Compared rows on which the "
                                      "shadow candidate's prediction differs", labels,
                                      registry=registry)
        self._latency = Histogram(c.METRIC_SHADOW_LATENCY, "Duration of a shadow candidate's "
                                  "answers in seconds", labels, buckets=LATENCY_BUCKETS,
                                  registry=registry)
        self._percent = Gauge(c.METRIC_SHADOW_PERCENT, "Share of predict requests copied to the "
                              "shadow candidate", labels, multiprocess_mode="livemax",
                              registry=registry)
        self._invalid = Gauge(c.METRIC_SHADOW_INVALID, "1 while the shadow annotations are "
                              "refused (see the log)", ["model", "version"],
                              multiprocess_mode="livemax", registry=registry).labels(model, version)

    def configured(self, previous: str | None, candidate: str | None, percent: float,
                   invalid: bool) -> None:
        """The target changed: the old candidate's share goes to 0, every new series exists."""
        if previous is not None and previous != candidate:
            self._percent.labels(self._model, self._version, previous).set(0)
        if candidate is not None:
            self._percent.labels(self._model, self._version, candidate).set(percent)
            for outcome in c.SHADOW_OUTCOMES:
                self._requests.labels(self._model, self._version, candidate, outcome)
            for family in (self._rows, self._disagreements, self._latency):
                family.labels(self._model, self._version, candidate)
        self._invalid.set(1 if invalid else 0)

    def outcome(self, candidate: str, outcome: str) -> None:
        self._requests.labels(self._model, self._version, candidate, outcome).inc()

    def compared(self, candidate: str, rows: int, disagreements: int, seconds: float) -> None:
        self._rows.labels(self._model, self._version, candidate).inc(rows)
        self._disagreements.labels(self._model, self._version, candidate).inc(disagreements)
        self._latency.labels(self._model, self._version, candidate).observe(seconds)

    def answered(self, candidate: str, seconds: float) -> None:
        """A candidate answer that was not compared (an error status or a bad answer)."""
        self._latency.labels(self._model, self._version, candidate).observe(seconds)
