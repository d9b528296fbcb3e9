"""Where the rollback analysis gets its numbers: the serving pods' /metrics, or Prometheus.

`ScrapeSource` (the default, no Prometheus needed) reads each serving pod's /metrics page and
sums `contract.METRIC_REQUESTS` for one model version into a `Snapshot`; the caller keeps a few
snapshots and computes the window with `analysis.window_stats`. `PrometheusSource` asks a
Prometheus server for the same increase with PromQL. Both raise `MetricsUnavailable` with a
sentence saying why when they have nothing to go on; the caller turns that into an Inconclusive
decision, never a rollback. This module does I/O; the parsing helpers in it are pure.

A pod that cannot be scraped while others can is left out of the snapshot and listed in
`Snapshot.unscraped` with the reason. We keep judging on the pods we can read, because a bad
version can make one pod slow to answer /metrics and refusing to judge would then keep the bad
version serving; the pods of one version sit behind one Service, so the rest are a fair sample.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterable, Mapping

import requests
from prometheus_client.parser import text_string_to_metric_families

from modelops import contract
from modelops.operator import scrape
from modelops.operator.analysis import PodCounters, Snapshot, WindowStats
from modelops.operator.quality import QualityCounts, QualityWindow

MAX_METRICS_BYTES = scrape.MAX_BYTES
MAX_LISTED_PODS = 3  # a failure lists this many pods and a count (a condition message is bounded)


class MetricsUnavailable(Exception):
    """No usable metrics; the message says why (connection refused, HTTP 500, parse error...)."""


def _describe(exc: requests.RequestException, timeout: float) -> str:
    """A short reason for a failed HTTP request instead of urllib3's nested repr."""
    if isinstance(exc, requests.Timeout):
        return f"timed out after {timeout:g}s"
    text = str(exc)
    if isinstance(exc, requests.ConnectionError):
        return "connection refused" if "refused" in text.lower() else f"cannot connect ({text})"
    return f"request failed ({text})"


def parse_samples(text: str, url: str = "/metrics") -> list:
    """All samples of a Prometheus text page; MetricsUnavailable if it does not parse. The
    reason never quotes the page: a pod's answer must not reach the Model's status."""
    try:
        families = text_string_to_metric_families(text)
        return [sample for family in families for sample in family.samples]
    except Exception:  # the parser raises ValueError, IndexError, ... on garbage
        raise MetricsUnavailable("not in the Prometheus text format") from None


def _matches(sample, name: str, model: str, version: str) -> bool:
    labels = sample.labels
    return sample.name == name and labels.get("model") == model and labels.get("version") == version


def request_counters(samples: Iterable, *, model: str, version: str) -> PodCounters:
    """Sum one version's request counter over protocols and codes; 5xx codes are errors."""
    requests_total = errors = 0.0
    for sample in samples:
        if _matches(sample, contract.METRIC_REQUESTS, model, version):
            requests_total += sample.value
            if str(sample.labels.get("code", "")).startswith("5"):
                errors += sample.value
    return PodCounters(requests=requests_total, errors=errors)


def quality_values(samples: Iterable, *, model: str, version: str) -> dict[str, list[float]]:
    """Every non-NaN quality gauge value of one version, by metric name (accuracy, rmse)."""
    found: dict[str, list[float]] = {}
    for sample in samples:
        wanted = _matches(sample, contract.METRIC_QUALITY, model, version)
        if wanted and not math.isnan(sample.value):
            found.setdefault(sample.labels.get("metric", ""), []).append(sample.value)
    return found


_QUALITY_FIELDS = {contract.METRIC_FEEDBACK_ROWS: "rows", contract.METRIC_FEEDBACK_CORRECT: "correct",
                   contract.METRIC_FEEDBACK_ABS_ERROR: "abs_error",
                   contract.METRIC_FEEDBACK_SQUARED_ERROR: "squared_error"}


def quality_counters(samples: Iterable, *, model: str, version: str) -> QualityCounts:
    """One pod's cumulative feedback counters for model+version (summed over workers already)."""
    values = dict.fromkeys(_QUALITY_FIELDS.values(), 0.0)
    classes: dict[str, dict[str, float]] = {}
    for sample in samples:
        name = sample.name
        if name in _QUALITY_FIELDS and _matches(sample, name, model, version):
            values[_QUALITY_FIELDS[name]] += sample.value
        elif _matches(sample, contract.METRIC_FEEDBACK_CLASS, model, version):
            outcome = classes.setdefault(sample.labels.get("class", ""), {})
            key = sample.labels.get("outcome", "")
            outcome[key] = outcome.get(key, 0.0) + sample.value
    return QualityCounts(classes=classes, **values)


class ScrapeSource:
    """Scrapes the serving pods' /metrics pages directly (the default metrics source): every
    pod of one call at once, the whole call inside `timeout` seconds (scrape.py)."""

    def __init__(self, *, timeout: float = 2.0):
        if timeout <= 0:
            raise ValueError(f"timeout must be positive, got {timeout!r}")
        self.timeout = timeout

    def samples(self, pod_urls: Mapping[str, str]) -> tuple[dict[str, list], dict[str, str]]:
        """(samples by pod, failure reason by pod); MetricsUnavailable if no pod answered."""
        if not pod_urls:
            raise MetricsUnavailable("no serving pods to scrape")
        scraped, failed = {}, {}
        for pod, got in scrape.fetch_all(pod_urls, self.timeout, MAX_METRICS_BYTES).items():
            try:
                if isinstance(got, str):
                    raise MetricsUnavailable(got)
                scraped[pod] = parse_samples(got.decode("utf-8", errors="replace"))
            except MetricsUnavailable as exc:
                failed[pod] = str(exc)
        if not scraped:
            listed = sorted(failed.items())[:MAX_LISTED_PODS]
            reasons = "; ".join(f"{pod}: {why}" for pod, why in listed)
            more = len(failed) - len(listed)
            raise MetricsUnavailable(f"no serving pod could be scraped: {reasons}"
                                     + (f" (and {more} more)" if more > 0 else ""))
        return scraped, failed

    def snapshot(
        self, pod_urls: Mapping[str, str], *, model: str, version: str, now: float
    ) -> Snapshot:
        """Read every pod's request counters for model+version at time `now`.

        pod_urls maps pod name -> "http://<podIP>:8080/metrics". Pods that fail are listed in
        `Snapshot.unscraped`; if every pod fails, MetricsUnavailable says why for each.
        """
        scraped, failed = self.samples(pod_urls)
        pods = {
            pod: request_counters(samples, model=model, version=version)
            for pod, samples in scraped.items()
        }
        return Snapshot(time=now, pods=pods, unscraped=failed)

    def quality_counters(self, pod_urls: Mapping[str, str], *, model: str,
                         version: str) -> dict[str, QualityCounts]:
        """Each readable pod's cumulative feedback counters (pod -> counts)."""
        scraped, _ = self.samples(pod_urls)
        return {pod: quality_counters(samples, model=model, version=version)
                for pod, samples in scraped.items()}

    def quality(self, pod_urls: Mapping[str, str], *, model: str, version: str) -> dict[str, float]:
        """The mean of each quality metric (accuracy, rmse) over the pods that report it.

        Metrics no pod reports yet (no feedback) are absent from the result.
        """
        scraped, _ = self.samples(pod_urls)
        merged: dict[str, list[float]] = {}
        for samples in scraped.values():
            for metric, values in quality_values(samples, model=model, version=version).items():
                merged.setdefault(metric, []).extend(values)
        return {metric: sum(values) / len(values) for metric, values in merged.items()}


def promql_string(value: str) -> str:
    """Quote a label value for PromQL (backslash, quote and newline escaped)."""
    escaped = value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return f'"{escaped}"'


def promql_range(seconds: float) -> str:
    """A PromQL range for a window: 120 -> "120s", 1.5 -> "1500ms"."""
    if seconds <= 0:
        raise ValueError(f"window_seconds must be positive, got {seconds!r}")
    if float(seconds).is_integer():
        return f"{int(seconds)}s"
    return f"{max(1, round(seconds * 1000))}ms"


def parse_query_result(payload: object, query: str) -> float:
    """Sum the values of a /api/v1/query answer; an empty vector is 0.

    Raises MetricsUnavailable for an error answer or a shape that is not an instant vector.
    """
    if not isinstance(payload, dict) or payload.get("status") != "success":
        error = payload.get("error", payload) if isinstance(payload, dict) else payload
        raise MetricsUnavailable(f"Prometheus refused {query!r}: {error}")
    data = payload.get("data")
    if not isinstance(data, dict) or data.get("resultType") != "vector":
        raise MetricsUnavailable(f"Prometheus answered {query!r} with no instant vector: {data!r}")
    try:
        return sum(float(item["value"][1]) for item in data.get("result", []))
    except (KeyError, IndexError, TypeError, ValueError) as exc:
        raise MetricsUnavailable(f"cannot read Prometheus result for {query!r}: {exc!r}") from exc


class PrometheusSource:
    """Asks Prometheus (PromQL over GET /api/v1/query) for a version's requests and 5xx errors.

    `namespace_label` is the label the scrape config puts the pod's namespace in ("namespace"
    in the usual Kubernetes relabelling); None leaves the namespace out of the selector.
    """

    def __init__(
        self,
        base_url: str,
        *,
        timeout: float = 5.0,
        session: requests.Session | None = None,
        namespace_label: str | None = "namespace",
    ):
        if not base_url.startswith(("http://", "https://")):
            raise ValueError(f"Prometheus URL must start with http(s)://, got {base_url!r}")
        if timeout <= 0:
            raise ValueError(f"timeout must be positive, got {timeout!r}")
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self.session = session or requests.Session()
        self.namespace_label = namespace_label

    def query(self, promql: str, *, at: float | None = None) -> float:
        """Run one instant query (at unix time `at`, default Prometheus's now); sum the result."""
        url = f"{self.base_url}/api/v1/query"
        params = {"query": promql} if at is None else {"query": promql, "time": f"{at:.3f}"}
        try:
            response = self.session.get(url, params=params, timeout=self.timeout)
        except requests.RequestException as exc:
            raise MetricsUnavailable(f"Prometheus {_describe(exc, self.timeout)} ({url})") from exc
        try:
            payload = response.json()
        except ValueError:
            raise MetricsUnavailable(
                f"Prometheus answered HTTP {response.status_code} with a body that is not JSON"
            ) from None
        if response.status_code != 200 and isinstance(payload, dict) and "error" in payload:
            raise MetricsUnavailable(
                f"Prometheus answered HTTP {response.status_code}: {payload.get('errorType', '')}"
                f" {payload['error']}".rstrip()
            )
        return parse_query_result(payload, promql)

    def selector(self, *, namespace: str, model: str, version: str, errors_only: bool) -> str:
        """The series selector for one version's request counter."""
        labels = [] if self.namespace_label is None else [(self.namespace_label, namespace)]
        matchers = [f"{name}={promql_string(value)}" for name, value in labels]
        matchers += [f"model={promql_string(model)}", f"version={promql_string(version)}"]
        if errors_only:
            matchers.append('code=~"5.*"')
        return f"{contract.METRIC_REQUESTS}{{{','.join(matchers)}}}"

    def window_stats(
        self,
        *,
        namespace: str,
        model: str,
        version: str,
        window_seconds: float,
        now: float | None = None,
    ) -> WindowStats:
        """Requests and 5xx errors of model+version over the window ending at `now`.

        Both queries are evaluated at the same instant: increase() extrapolates to the end of
        the window, so two queries a few milliseconds apart would not share one denominator.
        """
        window = promql_range(window_seconds)
        at = time.time() if now is None else now
        totals = []
        for errors_only in (False, True):
            selector = self.selector(
                namespace=namespace, model=model, version=version, errors_only=errors_only
            )
            totals.append(self.query(f"sum(increase({selector}[{window}]))", at=at))
        return WindowStats(requests=totals[0], errors=totals[1])

    def vector(self, promql: str, *, at: float | None = None) -> list[tuple[dict, float]]:
        """Run one instant query; (labels, value) per series."""
        url = f"{self.base_url}/api/v1/query"
        params = {"query": promql} if at is None else {"query": promql, "time": f"{at:.3f}"}
        try:
            payload = self.session.get(url, params=params, timeout=self.timeout).json()
        except (requests.RequestException, ValueError) as exc:
            raise MetricsUnavailable(f"Prometheus query failed: {exc}") from exc
        parse_query_result(payload, promql)  # raises on errors and odd shapes
        return [(item.get("metric", {}), float(item["value"][1]))
                for item in payload["data"]["result"]]

    def quality_window(self, *, namespace: str, model: str, version: str,
                       window_seconds: float, now: float | None = None) -> QualityWindow:
        """Feedback counts of model+version over the window, summed over pods by PromQL."""
        window, at = promql_range(window_seconds), time.time() if now is None else now
        labels = [] if self.namespace_label is None else [(self.namespace_label, namespace)]
        matchers = ",".join([f"{k}={promql_string(v)}" for k, v in labels]
                            + [f"model={promql_string(model)}", f"version={promql_string(version)}"])
        values = {field: self.query(f"sum(increase({name}{{{matchers}}}[{window}]))", at=at)
                  for name, field in _QUALITY_FIELDS.items()}
        classes: dict[str, dict[str, float]] = {}
        query = (f"sum by (class, outcome) (increase({contract.METRIC_FEEDBACK_CLASS}"
                 f"{{{matchers}}}[{window}]))")
        for series, value in self.vector(query, at=at):
            classes.setdefault(series.get("class", ""), {})[series.get("outcome", "")] = value
        return QualityWindow(QualityCounts(classes=classes, **values))
