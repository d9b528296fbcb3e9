"""The canary gate (pure): the policy in `spec.rollout.canary`, the evidence, the verdict.

After a new revision is ready (and past its shadow gate, when it has one), it answers a growing
share of the users' requests before it takes the Service: `steps` such as 10 and 50 %. No mesh
is involved: the serving revision's pods hand that share of their unpinned predict requests to
the candidate's Service and relay its answer (serving/pinned.py), counting each one in
`modelops_forwarded_requests_total{route="canary",code}`; `fallback` there means the candidate
could not answer and the serving pod answered instead. `CanaryStats` is the increase of those
counters since the current step started, and `judge` turns it into a verdict for the step:
Fail as soon as the candidate's failures (5xx answers and fallbacks) over at least `minRequests`
requests are above `maxErrorRate`, Pass once the step has been held `stepDuration` with at
least `minRequests` answers under the rate, Wait otherwise.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from modelops import contract
from modelops.operator.analysis import format_duration, parse_duration
from modelops.operator.shadow_gate import FAIL, PASS, WAIT

__all__ = ["CanaryPolicy", "CanaryStats", "FAIL", "PASS", "WAIT", "increase", "judge",
           "pod_counters"]

HEADER_NAME = re.compile(contract.CANARY_HASH_HEADER_PATTERN)  # what the serving pods accept


@dataclass(frozen=True)
class CanaryPolicy:
    """spec.rollout.canary: the weights, how long each is held, what the candidate must show."""

    steps: tuple[float, ...] = (10.0, 50.0)
    step_duration_seconds: float = 60.0
    min_requests: int = 50
    max_error_rate: float = 0.01
    hash_header: str = ""

    @classmethod
    def from_spec(cls, raw: Any) -> "CanaryPolicy | None":
        """None when absent. Bad values raise ValueError naming the field (the CRD refuses
        them first)."""
        if raw is None:
            return None
        if not isinstance(raw, Mapping):
            raise ValueError("spec.rollout.canary must be an object")
        where = "spec.rollout.canary"
        unknown = sorted(set(raw) - {"steps", "stepDuration", "minRequests", "maxErrorRate",
                                     "hashHeader"})
        if unknown:
            raise ValueError(f"{where}.{unknown[0]} is not a known field (known: steps, "
                             "stepDuration, minRequests, maxErrorRate, hashHeader)")
        policy = cls()
        return cls(
            steps=_steps(raw["steps"]) if "steps" in raw else policy.steps,
            step_duration_seconds=_duration(raw.get("stepDuration"), policy),
            min_requests=_number(raw, "minRequests", policy.min_requests, 1, 100_000_000, True),
            max_error_rate=_number(raw, "maxErrorRate", policy.max_error_rate, 0.0, 1.0),
            hash_header=_header(raw.get("hashHeader", "")))


def _steps(raw: Any) -> tuple[float, ...]:
    where = "spec.rollout.canary.steps"
    if not isinstance(raw, list) or not raw or len(raw) > 10:
        raise ValueError(f"{where} must be a list of 1 to 10 percentages")
    steps = []
    for value in raw:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value < 100:
            raise ValueError(f"{where} must hold numbers above 0 and below 100 (100 % is the "
                             f"switch that follows the last step), got {value!r}")
        if steps and value <= steps[-1]:
            raise ValueError(f"{where} must increase, got {raw!r}")
        steps.append(float(value))
    return tuple(steps)


def _duration(raw: Any, policy: CanaryPolicy) -> float:
    if raw is None:
        return policy.step_duration_seconds
    seconds = parse_duration(raw)
    if seconds < 1.0:
        raise ValueError("spec.rollout.canary.stepDuration must be at least 1s")
    return seconds


def _number(raw: Mapping, key: str, default: float, low: float, high: float,
            integer: bool = False) -> Any:
    value = raw.get(key, default)
    where = f"spec.rollout.canary.{key}"
    if isinstance(value, bool) or not isinstance(value, (int, float)) or (
            integer and not isinstance(value, int)):
        raise ValueError(f"{where} must be {'an integer' if integer else 'a number'}, "
                         f"got {value!r}")
    if not low <= value <= high:
        raise ValueError(f"{where} must be between {low:g} and {high:g}, got {value!r}")
    return value


def _header(raw: Any) -> str:
    if not isinstance(raw, str) or (raw and not HEADER_NAME.match(raw)):
        raise ValueError(f"spec.rollout.canary.hashHeader must be an HTTP header name "
                         f"(letters, digits and -, at most 64), got {raw!r}")
    return raw


@dataclass(frozen=True)
class CanaryStats:
    """The increase of the serving pods' canary counters for one candidate, this step."""

    codes: Mapping[str, float] = field(default_factory=dict)  # "200", "500", "fallback", ...
    unscraped: int = 0
    settling: bool = False  # read before the step's wiring settled: it may fail, not pass yet

    @property
    def requests(self) -> float:
        return sum(self.codes.values())

    @property
    def failed(self) -> float:
        return sum(v for k, v in self.codes.items() if k == "fallback" or k.startswith("5"))

    @property
    def error_rate(self) -> float | None:
        return self.failed / self.requests if self.requests else None

    def as_status(self) -> dict[str, Any]:
        shown = {"requests": round(self.requests), "failed": round(self.failed),
                 "answers": {k: round(v) for k, v in sorted(self.codes.items())}}
        if self.error_rate is not None:
            shown["errorRate"] = round(self.error_rate, 6)
        return shown


def judge(policy: CanaryPolicy, stats: CanaryStats | None, *, held: float,
          weight: float) -> tuple[str, str, str]:
    """(verdict, reason, message) for the step at `weight` %, held `held` seconds so far.
    Failures count over max(requests, minRequests), so a candidate failing its first requests
    is stopped without waiting for minRequests: no later answers could bring that rate down."""
    if stats is None:
        return WAIT, "CanaryStarting", f"at {weight:g}%: no canary counters read yet"
    requests, failed = stats.requests, stats.failed
    figures = (f"{round(failed)} of {round(requests)} of its answers failed"
               if requests else "no answers yet")
    if failed / max(requests, policy.min_requests) > policy.max_error_rate:
        return FAIL, "CanaryErrorRateAboveThreshold", (
            f"at {weight:g}%: {figures} (maxErrorRate {policy.max_error_rate:.1%} over at "
            f"least {policy.min_requests} requests)")
    if requests < policy.min_requests or held < policy.step_duration_seconds or stats.settling:
        return WAIT, "Canary", (
            f"at {weight:g}% for {format_duration(held)} of "
            f"{format_duration(policy.step_duration_seconds)}: {figures}; "
            f"{round(requests)} of {policy.min_requests} requests")
    return PASS, "CanaryStepPassed", f"at {weight:g}% for {format_duration(held)}: {figures}"


# --- counters -------------------------------------------------------------------------------
PodCanary = dict[str, float]  # canary answers by code


def pod_counters(samples: Iterable, *, model: str, version: str, candidate: str) -> PodCanary:
    """One pod's cumulative canary answers by code for (model, serving version, candidate)."""
    codes: dict[str, float] = {}
    for s in samples:
        labels = s.labels
        if s.name != contract.METRIC_FORWARDED_REQUESTS or labels.get("route") != "canary" or (
                labels.get("model"), labels.get("version"), labels.get("target")) != (
                model, version, candidate):
            continue
        code = labels.get("code", "")
        codes[code] = codes.get(code, 0.0) + s.value
    return codes


LATE_CODES = frozenset({"fallback"})
"""Counted only once the step's wiring settled: the serving pods answer in the candidate's
place while its Service still reaches DNS and kube-proxy, which says nothing about it. Its own
5xx answers count from the step's first read."""


def increase(baseline: Mapping[str, PodCanary], current: Mapping[str, PodCanary],
             unscraped: int = 0, settled: Mapping[str, PodCanary] | None = None,
             settling: bool = False) -> CanaryStats:
    """Answers since `baseline` (LATE_CODES since `settled`, when given), summed over pods; a
    pod new since then, or whose counters went down (it restarted), counts from zero."""
    codes: dict[str, float] = {}
    for pod, counts in current.items():
        base = _since(baseline.get(pod), counts)
        late = base if settled is None else _since(settled.get(pod), counts)
        for k, v in counts.items():
            codes[k] = codes.get(k, 0.0) + v - (late if k in LATE_CODES else base).get(k, 0.0)
    return CanaryStats(codes={k: v for k, v in codes.items() if v}, unscraped=unscraped,
                       settling=settling)


def _since(base: PodCanary | None, counts: PodCanary) -> PodCanary:
    """`base`, or nothing when the pod is new or restarted since (a counter went down)."""
    if not base or any(counts.get(k, 0.0) < v for k, v in base.items()):
        return {}
    return base
