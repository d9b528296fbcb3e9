"""The shadow gate's evidence: what the serving pods counted about the candidate in shadow.

While a Model's status has a revision in Shadowing, each pass (at most once a tick) scrapes the
serving revision's ready pods' /metrics and reads their `modelops_shadow_*` counters for that
candidate (`shadow_gate.pod_counters`). The first read after the shadow settled is the
baseline; the evidence is the increase since then (`shadow_gate.increase`), so copies of an
earlier shadow of the same version never count. Copies sent while the candidate's Service and
the pods' annotations were still reaching DNS, kube-proxy and the annotations file
(`SETTLE_SECONDS` after `shadowStartedAt`) never count either: a refused copy then says nothing
about the candidate. The shadow is scraped from the pods even when the rollback analysis asks
Prometheus. Evidence lives in memory: an operator restart starts the count again.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Mapping
from typing import Any

from modelops import contract
from modelops.operator.metrics_source import MetricsUnavailable, ScrapeSource
from modelops.operator.monitor import own_ready_pod
from modelops.operator.revisions import SHADOWING, parse_iso
from modelops.operator.shadow_gate import PodShadow, ShadowStats, increase, pod_counters

SETTLE_SECONDS = 5.0
"""Copies sent this soon after the shadow started are not evidence (the wiring settles)."""


class ShadowMonitor:
    """Per Model uid: the baseline of the shadow in progress and the latest evidence."""

    def __init__(self, scrape: ScrapeSource, *, tick: float, settle: float = SETTLE_SECONDS):
        self._scrape, self._tick, self._settle = scrape, tick, settle
        self._baselines: dict[str, tuple[tuple, dict[str, PodShadow]]] = {}
        self._last: dict[str, tuple[tuple, float, ShadowStats | None]] = {}
        self._lock = threading.Lock()

    def forget(self, uid: str) -> None:
        with self._lock:
            self._baselines.pop(uid, None)
            self._last.pop(uid, None)

    def measure(self, *, uid: str, name: str, status: Mapping[str, Any],
                pods: Iterable[Mapping[str, Any]], now: float) -> dict[str, ShadowStats]:
        """{candidate revision: evidence since its shadow settled}; {} when none is in shadow
        or nothing was read yet."""
        candidate = next((r for r in status.get("revisions") or []
                          if r.get("phase") == SHADOWING), None)
        serving, version = status.get("servingRevision"), status.get("servingVersion")
        started = parse_iso((candidate or {}).get("shadowStartedAt"))
        if candidate is None or not serving or started is None:
            self.forget(uid)
            return {}
        if now < started + self._settle:
            return {}
        key = (serving, candidate["revision"], candidate["shadowStartedAt"])
        with self._lock:
            last = self._last.get(uid)
        if last is not None and last[0] == key and now - last[1] < self._tick - 0.25:
            stats = last[2]
        else:
            stats = self._read(uid, key, name, version, candidate["version"], pods, serving)
            with self._lock:
                self._last[uid] = (key, now, stats)
        return {} if stats is None else {candidate["revision"]: stats}

    def _read(self, uid: str, key: tuple, name: str, version: str, candidate: str,
              pods: Iterable[Mapping[str, Any]], serving: str) -> ShadowStats | None:
        urls = {p["name"]: f"http://{p['ip']}:{contract.DEFAULT_PORT}{contract.PATH_METRICS}"
                for p in pods if own_ready_pod(p, name, serving)}
        try:
            scraped, failed = self._scrape.samples(urls)
        except MetricsUnavailable:
            with self._lock:  # keep the evidence so far; the gate waits
                last = self._last.get(uid)
            return last[2] if last is not None and last[0] == key else None
        current = {pod: pod_counters(samples, model=name, version=version, candidate=candidate)
                   for pod, samples in scraped.items()}
        with self._lock:
            held = self._baselines.get(uid)
            if held is None or held[0] != key:
                held = self._baselines[uid] = (key, current)
        return increase(held[1], current, unscraped=len(failed))
