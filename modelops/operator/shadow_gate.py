"""The shadow gate (pure): the policy in `spec.rollout.shadow`, the evidence, the verdict.

A new revision with a shadow policy becomes ready, then receives copies of the serving
revision's live requests (the serving pods forward them, serving/shadow.py) before it answers
anyone. The serving pods count, per candidate, the copies by outcome, the rows compared and the
rows on which the candidate's prediction differed. `ShadowStats` is the increase of those
counters since the shadow started (summed over the serving pods, a restarted pod counting from
zero), and `judge` turns it into a verdict: Wait (fewer rows compared than `minRows`), Pass, or
Fail naming the rule broken. The candidate's error rate is its failed copies (non-2xx or an
answer that cannot be compared, refused connections, timeouts) over the copies sent to it; shed
copies were never sent and count for nothing.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from modelops import contract
from modelops.operator.analysis import format_duration, parse_duration

PASS, FAIL, WAIT = "Pass", "Fail", "Wait"
FAILED_OUTCOMES = ("error", "unreachable", "timeout")


@dataclass(frozen=True)
class ShadowPolicy:
    """spec.rollout.shadow: what share to copy and what the candidate must show."""

    percent: float = 100.0
    min_rows: int = 200
    max_disagreement: float = 0.05
    max_error_rate: float = 0.01
    tolerance: float = 0.01
    max_duration_seconds: float = 1800.0

    @classmethod
    def from_spec(cls, raw: Any) -> "ShadowPolicy | None":
        """None when absent (today's behaviour: a ready revision takes the traffic at once).
        Bad values raise ValueError naming the field (the CRD refuses them first)."""
        if raw is None:
            return None
        if not isinstance(raw, Mapping):
            raise ValueError("spec.rollout.shadow must be an object")
        unknown = sorted(set(raw) - set(_FIELDS))
        if unknown:
            raise ValueError(f"spec.rollout.shadow.{unknown[0]} is not a known field "
                             f"(known: {', '.join(_FIELDS)})")
        return cls(**{_FIELDS[key][0]: _value(key, value) for key, value in raw.items()})


_FIELDS: dict[str, tuple[str, str, float, float | None]] = {
    "percent": ("percent", "number", 0.0, 100.0),
    "minRows": ("min_rows", "int", 1, 100_000_000),
    "maxDisagreement": ("max_disagreement", "number", 0.0, 1.0),
    "maxErrorRate": ("max_error_rate", "number", 0.0, 1.0),
    "tolerance": ("tolerance", "number", 0.0, None),
    "maxDuration": ("max_duration_seconds", "duration", 1.0, None),
}


def _value(key: str, value: Any) -> float:
    name, kind, low, high = _FIELDS[key]
    where = f"spec.rollout.shadow.{key}"
    if kind == "duration":
        seconds = parse_duration(value)
        if seconds < low:
            raise ValueError(f"{where} must be at least {format_duration(low)}")
        return seconds
    if isinstance(value, bool) or not isinstance(value, (int, float)) or (
            kind == "int" and not isinstance(value, int)):
        raise ValueError(f"{where} must be {'an integer' if kind == 'int' else 'a number'}, "
                         f"got {value!r}")
    if value < low or (high is not None and value > high):
        bound = f"between {low:g} and {high:g}" if high is not None else f"at least {low:g}"
        raise ValueError(f"{where} must be {bound}, got {value!r}")
    if key == "percent" and value == 0:
        raise ValueError(f"{where} must be above 0 (a shadow that copies nothing never ends)")
    return value


@dataclass(frozen=True)
class ShadowStats:
    """The increase of the serving pods' shadow counters for one candidate."""

    rows: float = 0.0
    disagreements: float = 0.0
    outcomes: Mapping[str, float] = field(default_factory=dict)  # mirrored, shed, error, ...
    unscraped: int = 0  # serving pods that could not be read this time

    @property
    def sent(self) -> float:
        return sum(v for k, v in self.outcomes.items() if k != "shed")

    @property
    def failed(self) -> float:
        return sum(self.outcomes.get(k, 0.0) for k in FAILED_OUTCOMES)

    @property
    def error_rate(self) -> float | None:
        return self.failed / self.sent if self.sent else None

    @property
    def disagreement(self) -> float | None:
        return self.disagreements / self.rows if self.rows else None

    def as_status(self) -> dict[str, Any]:
        """For status (no nulls: the API server drops them, and a status that never matches
        what it stored would be written again every pass)."""
        shown = {"rows": round(self.rows), "disagreements": round(self.disagreements),
                 "disagreement": _round(self.disagreement), "errorRate": _round(self.error_rate),
                 "copies": {k: round(v) for k, v in sorted(self.outcomes.items())}}
        return {k: v for k, v in shown.items() if v is not None}


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 6)


def judge(policy: ShadowPolicy, stats: ShadowStats | None) -> tuple[str, str, str]:
    """(verdict, reason, message). Failed copies fail the gate as soon as they exceed the
    rate over at least `minRows` copies sent, even before enough rows were compared: a
    candidate that errors on every copy never compares a row."""
    if stats is None:
        return WAIT, "ShadowStarting", "no shadow counters read yet"
    figures = _figures(stats)
    rate, enough = stats.error_rate, max(stats.sent, stats.rows) >= policy.min_rows
    if rate is not None and enough and rate > policy.max_error_rate:
        return FAIL, "ShadowErrorRateAboveThreshold", (
            f"the candidate failed {rate:.1%} of {round(stats.sent)} shadow copies "
            f"(maxErrorRate {policy.max_error_rate:.1%}); {figures}")
    if stats.rows < policy.min_rows:
        return WAIT, "Shadowing", f"{round(stats.rows)} of {policy.min_rows} rows compared; {figures}"
    if stats.disagreement > policy.max_disagreement:
        return FAIL, "ShadowDisagreementAboveThreshold", (
            f"the candidate's predictions differ on {stats.disagreement:.1%} of "
            f"{round(stats.rows)} rows (maxDisagreement {policy.max_disagreement:.1%}); {figures}")
    return PASS, "ShadowPassed", f"{round(stats.rows)} rows compared; {figures}"


def _figures(stats: ShadowStats) -> str:
    disagreement = "n/a" if stats.disagreement is None else f"{stats.disagreement:.1%}"
    errors = "n/a" if stats.error_rate is None else f"{stats.error_rate:.1%}"
    shed = round(stats.outcomes.get("shed", 0.0))
    return f"disagreement {disagreement}, candidate errors {errors}, {shed} copies shed"


# --- counters -------------------------------------------------------------------------------
PodShadow = tuple[float, float, dict[str, float]]  # (rows, disagreements, copies by outcome)


def pod_counters(samples: Iterable, *, model: str, version: str, candidate: str) -> PodShadow:
    """One pod's cumulative shadow counters for (model, serving version, candidate)."""
    rows = disagreements = 0.0
    outcomes: dict[str, float] = {}
    for s in samples:
        labels = s.labels
        if (labels.get("model"), labels.get("version"), labels.get("candidate")) != (
                model, version, candidate):
            continue
        if s.name == contract.METRIC_SHADOW_ROWS:
            rows += s.value
        elif s.name == contract.METRIC_SHADOW_DISAGREEMENTS:
            disagreements += s.value
        elif s.name == contract.METRIC_SHADOW_REQUESTS:
            outcome = labels.get("outcome", "")
            outcomes[outcome] = outcomes.get(outcome, 0.0) + s.value
    return rows, disagreements, outcomes


def increase(baseline: Mapping[str, PodShadow], current: Mapping[str, PodShadow],
             unscraped: int = 0) -> ShadowStats:
    """Counters since `baseline`, summed over pods; a pod new since then, or whose counters
    went down (it restarted), counts from zero. Pods not read now contribute nothing."""
    rows = disagreements = 0.0
    outcomes: dict[str, float] = {}
    for pod, (r, d, o) in current.items():
        base = baseline.get(pod)
        if base is None or r < base[0] or d < base[1] or any(
                o.get(k, 0.0) < v for k, v in base[2].items()):
            base = (0.0, 0.0, {})
        rows, disagreements = rows + r - base[0], disagreements + d - base[1]
        for k, v in o.items():
            outcomes[k] = outcomes.get(k, 0.0) + v - base[2].get(k, 0.0)
    return ShadowStats(rows=rows, disagreements=disagreements, outcomes=outcomes,
                       unscraped=unscraped)
