"""Rollback analysis: the policy, the error-rate window and the decision rules. Pure, no I/O.

The operator keeps a short history of `Snapshot`s of request counters per model, turns it into
a `WindowStats` with `window_stats` and asks `decide` what to do. A window with fewer than
`min_requests` requests cannot breach, and anything we cannot measure (no data, NaN, a failed
scrape or query) is Inconclusive. Inconclusive neither advances nor resets the breach count: it
is no evidence of a breach, so it never leads to a rollback, and no evidence of health either,
so a flaky scrape during a real outage does not wipe the breaches already counted. The bake
window and dry run are the caller's job: `Decision.rollback` only says the breach rule is met.
"""
from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from itertools import pairwise
from typing import Any

PASSED = "Passed"
FAILED = "Failed"
INCONCLUSIVE = "Inconclusive"

REASON_ERROR_RATE_ABOVE = "ErrorRateAboveThreshold"
REASON_ERROR_RATE_WITHIN = "ErrorRateWithinThreshold"
REASON_TOO_FEW_REQUESTS = "TooFewRequests"
REASON_METRICS_UNAVAILABLE = "MetricsUnavailable"
REASON_ACCURACY_BELOW = "AccuracyBelowMinimum"
REASON_RMSE_ABOVE = "RmseAboveMaximum"

QUALITY_ACCURACY = "accuracy"
QUALITY_RMSE = "rmse"

_DURATION = re.compile(r"^(?:[0-9]+(?:\.[0-9]+)?(?:ms|s|m|h))+$")
_DURATION_PART = re.compile(r"([0-9]+(?:\.[0-9]+)?)(ms|s|m|h)")
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}


def parse_duration(text: str) -> float:
    """Return the seconds in a Go-style duration such as "2m", "15s", "1h30m" or "500ms"."""
    if not isinstance(text, str) or not _DURATION.match(text):
        raise ValueError(f"{text!r} is not a duration like 15s, 2m, 1h30m or 500ms")
    return sum(float(n) * _UNIT_SECONDS[unit] for n, unit in _DURATION_PART.findall(text))


def format_duration(seconds: float) -> str:
    """The inverse of `parse_duration` for messages: 120 -> "2m", 90 -> "1m30s", 0.5 -> "500ms"."""
    if seconds < 1:
        return f"{round(seconds * 1000)}ms"
    hours, rest = divmod(round(seconds), 3600)
    minutes, secs = divmod(rest, 60)
    parts = [f"{v}{u}" for v, u in ((hours, "h"), (minutes, "m"), (secs, "s")) if v]
    return "".join(parts) or "0s"


# spec.rollback key -> (field name, kind, lowest, highest); bounds match the CRD schema.
_SPEC_FIELDS: dict[str, tuple[str, str, float | None, float | None]] = {
    "enabled": ("enabled", "bool", None, None),
    "dryRun": ("dry_run", "bool", None, None),
    "errorRateThreshold": ("error_rate_threshold", "fraction", 0.0, 1.0),
    "window": ("window_seconds", "duration", 0.0, None),
    "interval": ("interval_seconds", "duration", 0.0, None),
    "consecutiveBreaches": ("consecutive_breaches", "int", 1, 100),
    "minRequests": ("min_requests", "int", 1, 1_000_000),
    "bakeWindow": ("bake_window_seconds", "duration", None, None),
    "minAccuracy": ("min_accuracy", "number", 0.0, 1.0),
    "maxRmse": ("max_rmse", "number", 0.0, None),
    "minPrecision": ("min_precision", "number", 0.0, 1.0),
    "minRecall": ("min_recall", "number", 0.0, 1.0),
    "maxMae": ("max_mae", "number", 0.0, None),
    "minScoredRows": ("min_scored_rows", "int", 1, 10_000_000),
    "keepPrevious": ("keep_previous", "int", 1, 10),
    "progressDeadlineSeconds": ("progress_deadline_seconds", "int", 10, 3600),
    "minJudgedWindows": ("min_judged_windows", "int", 1, 1000),
    "onBakeTimeout": ("on_bake_timeout", "enum", None, None),
}
BAKE_TIMEOUT_CHOICES = ("Hold", "Promote")


_QUALITY_KEYS = ("minAccuracy", "maxRmse", "minPrecision", "minRecall", "maxMae")


def _spec_value(key: str, value: Any) -> Any:
    """Check one spec.rollback value and convert it; the ValueError names the field."""
    _, kind, low, high = _SPEC_FIELDS[key]
    where = f"spec.rollback.{key}"
    if kind == "bool":
        if not isinstance(value, bool):
            raise ValueError(f"{where} must be true or false, got {value!r}")
        return value
    if kind == "enum":
        if value not in BAKE_TIMEOUT_CHOICES:
            raise ValueError(f"{where} must be one of {', '.join(BAKE_TIMEOUT_CHOICES)}, "
                             f"got {value!r}")
        return value
    if kind == "duration":
        try:
            seconds = parse_duration(value)
        except ValueError as exc:
            raise ValueError(f"{where}: {exc}") from None
        if low is not None and seconds <= low:
            raise ValueError(f"{where} must be longer than 0s, got {value!r}")
        return seconds
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"{where} must be a number, got {value!r}")
    if kind == "int" and not isinstance(value, int):
        raise ValueError(f"{where} must be a whole number, got {value!r}")
    if not math.isfinite(value):
        raise ValueError(f"{where} must be a finite number, got {value!r}")
    too_low = low is not None and (value <= low if kind == "fraction" else value < low)
    if too_low or (high is not None and value > high):
        low_text = f"above {low}" if kind == "fraction" else f"at least {low}"
        high_text = f" and at most {high}" if high is not None else ""
        raise ValueError(f"{where} must be {low_text}{high_text}, got {value!r}")
    return value


@dataclass(frozen=True)
class RollbackPolicy:
    """spec.rollback, parsed: when an error rate counts as a breach and when to roll back."""

    enabled: bool = True
    dry_run: bool = False
    error_rate_threshold: float = 0.05
    window_seconds: float = 120
    interval_seconds: float = 15
    consecutive_breaches: int = 3
    min_requests: int = 50
    bake_window_seconds: float = 1800
    min_accuracy: float | None = None
    max_rmse: float | None = None
    min_precision: float | None = None
    min_recall: float | None = None
    max_mae: float | None = None
    min_scored_rows: int = 100
    keep_previous: int = 1
    progress_deadline_seconds: int = 600
    min_judged_windows: int = 3
    on_bake_timeout: str = "Hold"

    @classmethod
    def from_spec(cls, rollback: Mapping | None) -> RollbackPolicy:
        """Build the policy from a Model's spec.rollback (camelCase keys, Go durations).

        Missing keys take the defaults above. Unknown keys, wrong types, out-of-range values and
        an interval longer than the window raise ValueError naming the field.
        """
        if rollback is None:
            return cls()
        if not isinstance(rollback, Mapping):
            raise ValueError(f"spec.rollback must be an object, got {rollback!r}")
        unknown = sorted(set(rollback) - set(_SPEC_FIELDS))
        if unknown:
            known = ", ".join(_SPEC_FIELDS)
            raise ValueError(f"spec.rollback.{unknown[0]} is not a known field (known: {known})")
        values = {
            _SPEC_FIELDS[key][0]: _spec_value(key, value)
            for key, value in rollback.items()
            if value is not None or key not in _QUALITY_KEYS
        }
        policy = cls(**values)
        if policy.interval_seconds > policy.window_seconds:
            raise ValueError(
                f"spec.rollback.interval ({format_duration(policy.interval_seconds)}) must not be "
                f"longer than spec.rollback.window ({format_duration(policy.window_seconds)})"
            )
        return policy


@dataclass(frozen=True)
class PodCounters:
    """One pod's cumulative request counters for one model version at one scrape."""

    requests: float
    errors: float


@dataclass(frozen=True)
class Snapshot:
    """One scrape of all serving pods of one version.

    `unscraped` names pods that exist but could not be read this time (pod -> why). They are
    not gone: when such a pod is read again its counters continue from its last known values
    instead of counting as a new pod.
    """

    time: float
    pods: Mapping[str, PodCounters]
    unscraped: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class WindowStats:
    """Requests and 5xx errors counted over one analysis window."""

    requests: float
    errors: float

    @property
    def error_rate(self) -> float | None:
        """errors / requests, or None when there were no requests."""
        if self.requests == 0:
            return None
        return self.errors / self.requests


def _increase(values: Sequence[PodCounters]) -> tuple[float, float]:
    """Sum the rises of a cumulative series; a drop in either counter is a restart from zero."""
    requests = errors = 0.0
    for before, after in pairwise(values):
        if after.requests < before.requests or after.errors < before.errors:
            requests += after.requests
            errors += after.errors
        else:
            requests += after.requests - before.requests
            errors += after.errors - before.errors
    return requests, errors


def _series(pod: str, inside: Sequence[Snapshot], before: Sequence[Snapshot]) -> list[PodCounters]:
    """The pod's samples in the window, preceded by the value its increase starts from.

    A pod in the window's first snapshot starts from that sample. A pod first read later starts
    from its last value before the window if it was read earlier, from its first sample if it
    was known but unreadable, and from zero if it was never seen: it is a new pod.
    """
    samples = [snap.pods[pod] for snap in inside if pod in snap.pods]
    if pod in inside[0].pods:
        return samples
    earlier = [snap for snap in before if pod in snap.pods]
    if earlier:
        return [earlier[-1].pods[pod], *samples]
    first_read = next(snap.time for snap in inside if pod in snap.pods)
    known = any(pod in snap.unscraped for snap in (*before, *inside) if snap.time < first_read)
    return samples if known else [PodCounters(0.0, 0.0), *samples]


def window_stats(
    snapshots: Sequence[Snapshot], *, window_seconds: float, now: float
) -> WindowStats | None:
    """Requests and errors over [now - window_seconds, now], summed over pods.

    Like Prometheus increase(): per pod, the rises between consecutive samples, a counter that
    went down (a restarted pod) counting its new value from zero. Returns None when fewer than
    two snapshots fall inside the window, since one scrape cannot show an increase.
    """
    ordered = sorted(snapshots, key=lambda snap: snap.time)
    start = now - window_seconds
    inside = [snap for snap in ordered if start <= snap.time <= now]
    if len(inside) < 2:
        return None
    before = [snap for snap in ordered if snap.time < start]
    pods = sorted({pod for snap in inside for pod in snap.pods})
    requests = errors = 0.0
    for pod in pods:
        pod_requests, pod_errors = _increase(_series(pod, inside, before))
        requests += pod_requests
        errors += pod_errors
    return WindowStats(requests=requests, errors=errors)


@dataclass(frozen=True)
class Decision:
    """The outcome of one evaluation, ready for status.analysis, an Event and a metric."""

    result: str
    error_rate: float | None
    requests: float
    consecutive_breaches: int
    rollback: bool
    reason: str
    message: str
    quality: Mapping[str, float] | None = None
    """status.analysis.quality (scoredRows, accuracy, ... as measured), when feedback exists."""
    revision: str = ""  # the revision judged; the planner ignores decisions about another one

    @property
    def judged(self) -> bool:
        """A window with enough evidence to count towards promotion (Passed or Failed)."""
        return self.result in (PASSED, FAILED)


def _traffic(policy: RollbackPolicy, stats: WindowStats) -> str:
    rate = stats.error_rate
    rate_text = "no error rate" if rate is None else f"error rate {rate:.2%}"
    window = format_duration(policy.window_seconds)
    return f"{rate_text} over {window} ({stats.requests:g} requests, {stats.errors:g} errors)"


def _unjudgeable(
    policy: RollbackPolicy, stats: WindowStats | None, unavailable_reason: str | None
) -> tuple[str, str] | None:
    """(reason, text) when this window cannot be judged, else None."""
    if unavailable_reason:
        return REASON_METRICS_UNAVAILABLE, f"metrics unavailable: {unavailable_reason}"
    if stats is None:
        window = format_duration(policy.window_seconds)
        return REASON_METRICS_UNAVAILABLE, f"fewer than 2 scrapes in the last {window}"
    if math.isnan(stats.requests) or math.isnan(stats.errors):
        return REASON_METRICS_UNAVAILABLE, f"counters are not numbers: {_traffic(policy, stats)}"
    if stats.requests < policy.min_requests:
        traffic = f"{_traffic(policy, stats)}, {policy.min_requests} needed"
        return REASON_TOO_FEW_REQUESTS, f"too few requests to judge: {traffic}"
    return None


def _breaches(
    policy: RollbackPolicy, stats: WindowStats, quality: Mapping[str, float]
) -> list[tuple[str, str]]:
    """Every rule the window breaks as (reason, text), the error rate first.

    A quality value that is missing or NaN (no feedback yet) is not judged.
    """
    found = []
    rate = stats.error_rate
    if rate is not None and rate > policy.error_rate_threshold:
        found.append((REASON_ERROR_RATE_ABOVE,
                      f"{_traffic(policy, stats)} > {policy.error_rate_threshold:.2%}"))
    accuracy, rmse = quality.get(QUALITY_ACCURACY), quality.get(QUALITY_RMSE)
    if policy.min_accuracy is not None and accuracy is not None and accuracy < policy.min_accuracy:
        found.append((REASON_ACCURACY_BELOW, f"accuracy {accuracy:.4g} < {policy.min_accuracy:g}"))
    if policy.max_rmse is not None and rmse is not None and rmse > policy.max_rmse:
        found.append((REASON_RMSE_ABOVE, f"RMSE {rmse:.4g} > {policy.max_rmse:g}"))
    return found


def decide(
    policy: RollbackPolicy,
    stats: WindowStats | None,
    *,
    previous_breaches: int,
    quality: Mapping[str, float] | None = None,
    unavailable_reason: str | None = None,
    quality_window: Any = None,
) -> Decision:
    """Judge one window: Passed resets the breach count, Failed adds one, Inconclusive holds it.

    A breach needs at least `min_requests` requests and an error rate strictly above the
    threshold (or accuracy strictly below `min_accuracy`, RMSE strictly above `max_rmse`).
    `rollback` is True once `consecutive_breaches` breaches came in a row and the policy is
    enabled; honouring `dry_run` and the bake window is the caller's job.
    """
    if isinstance(previous_breaches, bool) or not isinstance(previous_breaches, int):
        raise ValueError(f"previous_breaches must be a whole number, got {previous_breaches!r}")
    if previous_breaches < 0:
        raise ValueError(f"previous_breaches must not be negative, got {previous_breaches}")
    requests = stats.requests if stats and math.isfinite(stats.requests) else 0.0
    rate = stats.error_rate if stats and requests else None
    rate = None if rate is None or math.isnan(rate) else rate
    unjudgeable = _unjudgeable(policy, stats, unavailable_reason)
    from_quality = quality_decision(policy, quality_window)
    if (unjudgeable or stats is None) and from_quality:
        return _failed(policy, from_quality, previous_breaches, rate, requests)
    if unjudgeable or stats is None:
        reason, text = unjudgeable or (REASON_METRICS_UNAVAILABLE, "no data")
        message = _sentence(f"{text}; breach count held at {previous_breaches}")
        return Decision(INCONCLUSIVE, rate, requests, previous_breaches, False, reason, message)
    breaches = _breaches(policy, stats, quality or {}) + from_quality
    if not breaches:
        message = _sentence(f"{_traffic(policy, stats)} <= {policy.error_rate_threshold:.2%}")
        return Decision(PASSED, rate, requests, 0, False, REASON_ERROR_RATE_WITHIN, message)
    return _failed(policy, breaches, previous_breaches, rate, requests)


def quality_decision(policy: RollbackPolicy, window: Any) -> list[tuple[str, str]]:
    """Quality rules broken by `window` (a quality.QualityWindow or None); see quality.py."""
    from modelops.operator.quality import quality_breaches

    return quality_breaches(policy, window)


def _failed(policy: RollbackPolicy, breaches: list[tuple[str, str]], previous_breaches: int,
            rate: float | None, requests: float) -> Decision:
    count = previous_breaches + 1
    rollback = policy.enabled and count >= policy.consecutive_breaches
    text = "; ".join(part for _, part in breaches)
    message = f"{text}; breach {count} of {policy.consecutive_breaches}"
    if rollback:
        message += ": roll back" + (" (dry run: reported only)" if policy.dry_run else "")
    elif not policy.enabled:
        message += " (rollback disabled)"
    return Decision(FAILED, rate, requests, count, rollback, breaches[0][0], _sentence(message))


def _sentence(text: str) -> str:
    return text[:1].upper() + text[1:]
