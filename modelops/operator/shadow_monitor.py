"""The shadow and canary gates' evidence: what the serving pods counted about the candidate.

While a Model's status has a revision in Shadowing (or Canary), each pass (at most once a tick)
scrapes the serving revision's ready pods' /metrics and reads their counters for that candidate:
`modelops_shadow_*` (`shadow_gate.pod_counters`) or the canary answers they relayed
(`canary_gate.pod_counters`). The evidence is the increase since a baseline, so an earlier
shadow or step never counts. What was sent while the candidate's Service and the pods'
annotations were still reaching DNS, kube-proxy and the annotations file (`SETTLE_SECONDS`
after the phase's clock) must not count against the candidate: a refused copy then says
nothing about it. So a shadow's baseline is the first read after the settle; a canary step's is
its first read, since the candidate's own 5xx answers to users count at once, and only its
`late_codes` (answers the serving pods made in its place) count from the first read after the
settle. The pods are scraped
even when the rollback analysis asks Prometheus. Evidence lives in memory: an operator restart
starts the count again.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from modelops import contract
from modelops.operator import canary_gate, shadow_gate
from modelops.operator.metrics_source import MetricsUnavailable, ScrapeSource
from modelops.operator.monitor import own_ready_pod
from modelops.operator.revisions import CANARY, SHADOWING, parse_iso

SETTLE_SECONDS = 5.0
"""Copies sent this soon after the shadow started are not evidence (the wiring settles)."""


@dataclass(frozen=True)
class Evidence:
    """What one gate reads: the phase it judges, the record's clock for it, and how a pod's
    counters are read (`counters(samples, model=, version=, candidate=)`) and added up
    (`increase(baseline, current, unscraped)`; with `late_codes`, also `settled=` and
    `settling=`)."""

    phase: str
    clock: str
    counters: Callable[..., Any]
    increase: Callable[..., Any]
    late_codes: frozenset[str] | None = None  # None: nothing is read before the settle


SHADOW = Evidence(SHADOWING, "shadowStartedAt", shadow_gate.pod_counters, shadow_gate.increase)
CANARY_STEP = Evidence(CANARY, "canaryStepStartedAt", canary_gate.pod_counters,
                       canary_gate.increase, late_codes=canary_gate.LATE_CODES)


class ShadowMonitor:
    """Per Model uid: the baseline of the phase in progress and the latest evidence."""

    def __init__(self, scrape: ScrapeSource, *, tick: float, settle: float = SETTLE_SECONDS,
                 evidence: Evidence = SHADOW):
        self._scrape, self._tick, self._settle = scrape, tick, settle
        self._evidence = evidence
        self._baselines: dict[str, tuple[tuple, dict[str, Any]]] = {}
        self._settled: dict[str, tuple[tuple, dict[str, Any]]] = {}  # for late_codes
        self._last: dict[str, tuple[tuple, float, Any]] = {}
        self._lock = threading.Lock()

    def forget(self, uid: str) -> None:
        with self._lock:
            self._baselines.pop(uid, None)
            self._settled.pop(uid, None)
            self._last.pop(uid, None)

    def measure(self, *, uid: str, name: str, status: Mapping[str, Any],
                pods: Iterable[Mapping[str, Any]], now: float) -> dict[str, Any]:
        """{candidate revision: evidence since its phase settled}; {} when none is in the
        phase or nothing was read yet."""
        clock = self._evidence.clock
        candidate = next((r for r in status.get("revisions") or []
                          if r.get("phase") == self._evidence.phase), None)
        serving, version = status.get("servingRevision"), status.get("servingVersion")
        started = parse_iso((candidate or {}).get(clock))
        if candidate is None or not serving or started is None:
            self.forget(uid)
            return {}
        settled = now >= started + self._settle
        if not settled and self._evidence.late_codes is None:
            return {}
        key = (serving, candidate["revision"], candidate[clock])
        with self._lock:
            last = self._last.get(uid)
        if last is not None and last[0] == key and now - last[1] < self._tick - 0.25:
            stats = last[2]
        else:
            stats = self._read(uid, key, name, version, candidate["version"], pods, serving,
                               settled)
            with self._lock:
                self._last[uid] = (key, now, stats)
        return {} if stats is None else {candidate["revision"]: stats}

    def _read(self, uid: str, key: tuple, name: str, version: str, candidate: str,
              pods: Iterable[Mapping[str, Any]], serving: str, settled: bool) -> Any:
        urls = {p["name"]: f"http://{p['ip']}:{contract.DEFAULT_PORT}{contract.PATH_METRICS}"
                for p in pods if own_ready_pod(p, name, serving)}
        try:
            scraped, failed = self._scrape.samples(urls)
        except MetricsUnavailable:
            with self._lock:  # keep the evidence so far; the gate waits
                last = self._last.get(uid)
            return last[2] if last is not None and last[0] == key else None
        current = {pod: self._evidence.counters(samples, model=name, version=version,
                                                candidate=candidate)
                   for pod, samples in scraped.items()}
        with self._lock:
            held = self._baselines.get(uid)
            if held is None or held[0] != key:
                held = self._baselines[uid] = (key, current)
            if self._evidence.late_codes is None:
                return self._evidence.increase(held[1], current, unscraped=len(failed))
            since = self._settled.get(uid)
            if settled and (since is None or since[0] != key):
                since = self._settled[uid] = (key, current)
            late = since[1] if settled else current  # before the settle: none of them yet
        return self._evidence.increase(held[1], current, unscraped=len(failed), settled=late,
                                       settling=not settled)
