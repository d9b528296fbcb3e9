"""The analysis loop's I/O side: read the serving version's metrics and ask `analysis.decide`.

By default the operator scrapes the serving pods' /metrics itself (a snapshot every tick, kept
for one window per model and revision); with a Prometheus URL it asks Prometheus with PromQL.
A decision is made once per `rollback.window` over that window only, so the windows judged are
disjoint and one burst of errors is one breach, never several; each decision names the revision
it judged (the planner ignores it if another revision serves by then). Anything that cannot be
measured becomes an Inconclusive decision that says why (it never rolls back). Passes may run
more often than the tick (every watch event runs one): `evaluate` scrapes only when the tick is
due. Only pods that are ready and controlled by the revision's own ReplicaSet are scraped;
snapshots belong to one serving period of one revision and are dropped when that period ends.
"""

from __future__ import annotations

import threading
from collections import deque
from dataclasses import replace
from typing import Any, Iterable, Mapping

from modelops import contract
from modelops.operator import analysis
from modelops.operator.builders import deployment_name
from modelops.operator.metrics_source import MetricsUnavailable, PrometheusSource, ScrapeSource
from modelops.operator.quality import QualityWindow, window_counts
from modelops.operator.revisions import iso, parse_iso
from modelops.operator.settings import OperatorSettings
from modelops.operator.spec import ModelSpec


def own_ready_pod(pod: Mapping[str, Any], model: str, revision: str) -> bool:
    """A ready pod of `revision` with an IP whose ReplicaSet is the revision's Deployment's:
    a pod that only carries the labels (anyone may set them) is not scraped."""
    return (pod["revision"] == revision and bool(pod["ip"]) and not pod["deleting"]
            and pod.get("ready", False)
            and pod.get("owner", "").startswith(f"{deployment_name(model, revision)}-"))


class Monitor:
    def __init__(self, settings: OperatorSettings):
        timeout = settings.scrape_timeout_seconds
        self.scrape = ScrapeSource(timeout=timeout)
        self.prometheus = (PrometheusSource(settings.prometheus_url, timeout=timeout)
                           if settings.prometheus_url else None)
        self._history: dict[tuple[str, str], deque[analysis.Snapshot]] = {}
        self._lock = threading.Lock()
        self._errors: dict[tuple[str, str], str] = {}  # the latest scrape failure, to report
        self._quality_history: dict[tuple[str, str], deque] = {}  # (model, version) -> samples
        self._tick = settings.tick_seconds
        self._last: dict[str, tuple[str, float]] = {}  # uid -> (serving period, last look)

    def forget(self, uid: str) -> None:
        with self._lock:
            for key in [k for k in self._history if k[0] == uid]:
                del self._history[key]
                self._errors.pop(key, None)
            self._last.pop(uid, None)
        # quality samples are keyed by (namespace, model, version); forget() only knows the uid,
        # so they age out with their window instead

    def _due(self, uid: str, period: str, now: float) -> bool:
        """Whether this pass should look (scrape or query): a new period, or a tick passed.
        Snapshots of earlier periods of this Model are dropped (S6)."""
        with self._lock:
            last = self._last.get(uid)
            if last is not None and last[0] == period and now - last[1] < self._tick - 0.25:
                return False
            self._last[uid] = (period, now)
            if last is None or last[0] != period:
                for key in [k for k in self._history if k[0] == uid]:
                    del self._history[key]
                    self._errors.pop(key, None)
            return True

    def evaluate(self, *, uid: str, namespace: str, name: str, spec: ModelSpec,
                 status: Mapping[str, Any], pods: Iterable[Mapping[str, Any]],
                 now: float) -> tuple[analysis.Decision | None, dict | None]:
        """Snapshot the serving version; when a decision is due, return it and the new
        `status.analysis`, else (None, None)."""
        serving, version = status.get("servingRevision"), status.get("servingVersion")
        if not serving or not status.get("servingSince"):
            return None, None
        if not self._due(uid, f"{serving}@{status['servingSince']}", now):
            return None, None
        policy = spec.rollback
        urls = {p["name"]: f"http://{p['ip']}:{contract.DEFAULT_PORT}{contract.PATH_METRICS}"
                for p in pods if own_ready_pod(p, name, serving)}
        history = self._remember(uid, serving, urls, name, version, now, policy)
        if self.prometheus is None and urls and len(history) < 2 \
                and (uid, serving) not in self._errors:
            return None, None  # the first scrapes of a new version: nothing to judge yet
        previous = status.get("analysis") or {}
        last = parse_iso(previous.get("lastEvaluated"))
        if last is None or previous.get("revision") != serving:
            last = parse_iso(status.get("servingSince"))
            if last is not None and now - last < policy.window_seconds - 0.5:
                return None, None  # the first window of this revision is not over yet
        elif now - last < policy.window_seconds - 0.5:
            return None, None  # windows are disjoint: the next one starts where this ended
        breaches = previous.get("consecutiveBreaches", 0) if previous.get("revision") == serving else 0
        decision = self._decide(policy, history, urls, namespace, name, version, now, breaches,
                                self._errors.get((uid, serving)))
        decision = replace(decision, revision=serving)
        return decision, {
            "revision": serving, "version": version, "lastEvaluated": iso(now),
            "errorRate": decision.error_rate, "requests": round(decision.requests),
            "consecutiveBreaches": decision.consecutive_breaches, "result": decision.result,
            "reason": decision.reason, "message": decision.message,
            **({"quality": decision.quality} if getattr(decision, "quality", None) else {}),
        }

    def _remember(self, uid, revision, urls, name, version, now, policy) -> list:
        if self.prometheus is not None:
            return []
        with self._lock:
            history = self._history.setdefault((uid, revision), deque())
        try:
            if urls:
                history.append(self.scrape.snapshot(urls, model=name, version=version, now=now))
            self._errors.pop((uid, revision), None)
        except MetricsUnavailable as error:  # reported by the decision if the window lacks data
            self._errors[(uid, revision)] = str(error)
        horizon = now - policy.window_seconds - 2 * policy.interval_seconds
        while history and history[0].time < horizon:
            history.popleft()
        return list(history)

    def _decide(self, policy, history, urls, namespace, name, version, now, breaches,
                scrape_error=None):
        quality = None
        try:
            if self.prometheus is not None:
                stats = self.prometheus.window_stats(namespace=namespace, model=name,
                                                     version=version,
                                                     window_seconds=policy.window_seconds)
            else:
                if not urls:
                    raise MetricsUnavailable("no ready serving pod with an IP to scrape")
                stats = analysis.window_stats(history, window_seconds=policy.window_seconds,
                                              now=now)
                if stats is None and scrape_error:
                    raise MetricsUnavailable(scrape_error)
            quality = self._quality(policy, urls, namespace, name, version, now)
        except MetricsUnavailable as error:
            return analysis.decide(policy, None, previous_breaches=breaches,
                                   unavailable_reason=str(error))
        decision = analysis.decide(policy, stats, previous_breaches=breaches, quality_window=quality)
        if quality is not None and quality.counts.rows:
            decision = replace(decision, quality=quality.as_status())
        return decision

    def _quality(self, policy, urls, namespace, name, version, now):
        """The feedback counts over the window (quality.QualityWindow), by PromQL or scraping."""
        if self.prometheus is not None:
            return self.prometheus.quality_window(namespace=namespace, model=name, version=version,
                                                  window_seconds=policy.window_seconds, now=now)
        if not urls:
            return None
        key = (namespace, name, version)
        samples = self._quality_history.setdefault(key, deque())
        samples.append((now, self.scrape.quality_counters(urls, model=name, version=version)))
        # one decision per window: keep the sample the previous decision took, so the
        # increase spans the window just judged (with a tick or two of slack)
        horizon = now - policy.window_seconds - 2 * policy.interval_seconds - self._tick
        while len(samples) > 1 and samples[0][0] < horizon:
            samples.popleft()
        return QualityWindow(window_counts([pods for _, pods in samples]))
