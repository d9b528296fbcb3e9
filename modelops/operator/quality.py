"""Model quality over the analysis window from feedback counters. Pure, no I/O.

Each serving pod exports cumulative counters (contract.METRIC_FEEDBACK_*): scored rows, correct
rows, per-class TP/FP/FN, sums of absolute and squared errors. `window_counts` takes each pod's
first and last sample in the window (a drop means a restart: the new value counts from zero),
sums the deltas over pods, and `QualityWindow` turns the sums into accuracy, macro precision and
recall (as sklearn's average='macro', zero_division=0, over classes seen in truth or
prediction), RMSE and MAE. Summing counters before dividing weights each pod by its rows.
`quality_breaches` applies the policy: no rule can breach below `min_scored_rows`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

REASON_ACCURACY = "AccuracyBelowMinimum"
REASON_PRECISION = "PrecisionBelowMinimum"
REASON_RECALL = "RecallBelowMinimum"
REASON_RMSE = "RmseAboveMaximum"
REASON_MAE = "MaeAboveMaximum"
DEFAULT_MIN_SCORED_ROWS = 100


@dataclass(frozen=True)
class QualityCounts:
    """Cumulative (one pod, one scrape) or window (summed) feedback counts of one version."""

    rows: float = 0.0
    correct: float = 0.0
    abs_error: float = 0.0
    squared_error: float = 0.0
    classes: Mapping[str, Mapping[str, float]] = field(default_factory=dict)
    """class -> {"tp", "fp", "fn"} -> count."""

    def minus(self, earlier: QualityCounts) -> QualityCounts:
        """The increase since `earlier`; all of self when a counter dropped (a restart)."""
        pairs = [(self.rows, earlier.rows), (self.correct, earlier.correct),
                 (self.abs_error, earlier.abs_error), (self.squared_error, earlier.squared_error)]
        pairs += [(self.classes.get(k, {}).get(o, 0.0), v.get(o, 0.0))
                  for k, v in earlier.classes.items() for o in v]
        if any(now < before for now, before in pairs):
            return self
        classes = {k: {o: n - earlier.classes.get(k, {}).get(o, 0.0) for o, n in v.items()}
                   for k, v in self.classes.items()}
        return QualityCounts(self.rows - earlier.rows, self.correct - earlier.correct,
                             self.abs_error - earlier.abs_error,
                             self.squared_error - earlier.squared_error, classes)

    def plus(self, other: QualityCounts) -> QualityCounts:
        classes = {k: dict(v) for k, v in self.classes.items()}
        for k, v in other.classes.items():
            for o, n in v.items():
                classes.setdefault(k, {})[o] = classes.get(k, {}).get(o, 0.0) + n
        return QualityCounts(self.rows + other.rows, self.correct + other.correct,
                             self.abs_error + other.abs_error,
                             self.squared_error + other.squared_error, classes)


def window_counts(samples: Sequence[Mapping[str, QualityCounts]]) -> QualityCounts:
    """Sum over pods of each pod's increase between consecutive samples (oldest first)."""
    total = QualityCounts()
    pods = {pod for sample in samples for pod in sample}
    for pod in sorted(pods):
        series = [sample[pod] for sample in samples if pod in sample]
        for before, after in zip(series, series[1:]):
            total = total.plus(after.minus(before))
    return total


@dataclass(frozen=True)
class QualityWindow:
    counts: QualityCounts

    @property
    def accuracy(self) -> float | None:
        c = self.counts
        return c.correct / c.rows if c.rows and c.classes else None

    def _macro(self, other: str) -> float | None:
        classes = [v for v in self.counts.classes.values() if sum(v.values()) > 0]
        if not classes:
            return None
        ratios = [(v.get("tp", 0.0) / (v.get("tp", 0.0) + v.get(other, 0.0)))
                  if v.get("tp", 0.0) + v.get(other, 0.0) else 0.0 for v in classes]
        return sum(ratios) / len(ratios)

    @property
    def precision(self) -> float | None:
        return self._macro("fp")

    @property
    def recall(self) -> float | None:
        return self._macro("fn")

    @property
    def rmse(self) -> float | None:
        c = self.counts
        return math.sqrt(c.squared_error / c.rows) if c.rows and not c.classes else None

    @property
    def mae(self) -> float | None:
        c = self.counts
        return c.abs_error / c.rows if c.rows and not c.classes else None

    def as_status(self) -> dict:
        """status.analysis.quality: rows and every measure that applies."""
        values = {"scoredRows": round(self.counts.rows)}
        for name in ("accuracy", "precision", "recall", "rmse", "mae"):
            value = getattr(self, name)
            if value is not None:
                values[name] = round(value, 6)
        return values


# (policy attribute, measure, reason, lower bound?)
RULES = (("min_accuracy", "accuracy", REASON_ACCURACY, True),
         ("min_precision", "precision", REASON_PRECISION, True),
         ("min_recall", "recall", REASON_RECALL, True),
         ("max_rmse", "rmse", REASON_RMSE, False),
         ("max_mae", "mae", REASON_MAE, False))


def quality_breaches(policy: object, window: QualityWindow | None) -> list[tuple[str, str]]:
    """(reason, sentence) for each quality rule the window breaks; none below min_scored_rows.

    Independent of min_requests: late labels can judge a version after its traffic stopped.
    """
    if window is None:
        return []
    rows = window.counts.rows
    minimum = getattr(policy, "min_scored_rows", DEFAULT_MIN_SCORED_ROWS)
    if rows < minimum:
        return []
    found = []
    for attribute, measure, reason, lower in RULES:
        limit, value = getattr(policy, attribute, None), getattr(window, measure)
        if limit is None or value is None:
            continue
        if (value < limit) if lower else (value > limit):
            sign = "<" if lower else ">"
            found.append((reason, f"{measure} {value:.4g} {sign} {limit:g} over "
                                  f"{rows:g} scored rows"))
    return found
