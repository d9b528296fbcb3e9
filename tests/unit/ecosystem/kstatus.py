"""kstatus for custom resources, as sigs.k8s.io/cli-utils computes it (test helper, pure).

This is what Flux (`wait`, `healthChecks`), kpt and `kubectl`-adjacent tools read. It follows
pkg/kstatus/status: `Compute` runs the generic checks (generic.go `checkGenericProperties`:
deletionTimestamp, then `checkGeneration`, then the first Reconciling=True or Stalled=True
condition in list order); a custom resource has no type-specific rules (core.go `legacyTypes`
holds only built-in kinds), so the last word is `checkReadyCondition` (Ready True -> Current,
False or Unknown -> InProgress), and with no known condition the resource is Current.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

IN_PROGRESS = "InProgress"
FAILED = "Failed"
CURRENT = "Current"
TERMINATING = "Terminating"


@dataclass(frozen=True)
class Result:
    status: str
    message: str
    reason: str = ""  # the reason of the condition kstatus would add (Reconciling/Stalled)


def compute(obj: Mapping[str, Any]) -> Result:
    """kstatus `Compute` for a resource of a kind with no built-in rules."""
    meta = obj.get("metadata") or {}
    if meta.get("deletionTimestamp"):
        return Result(TERMINATING, "Resource scheduled for deletion")
    stale = _check_generation(obj)
    if stale is not None:
        return stale
    conditions = _conditions(obj)
    for condition in conditions:
        if condition.get("status") != "True":
            continue
        if condition.get("type") == "Reconciling":
            return Result(IN_PROGRESS, condition.get("message", ""), condition.get("reason", ""))
        if condition.get("type") == "Stalled":
            return Result(FAILED, condition.get("message", ""), condition.get("reason", ""))
    for condition in conditions:
        if condition.get("type") != "Ready":
            continue
        if condition.get("status") == "True":
            return Result(CURRENT, "Resource is Ready")
        if condition.get("status") in ("False", "Unknown"):
            return Result(IN_PROGRESS, condition.get("message", ""), condition.get("reason", ""))
    return Result(CURRENT, "Resource is current")


def _check_generation(obj: Mapping[str, Any]) -> Result | None:
    generation = _int64((obj.get("metadata") or {}).get("generation"), "metadata.generation")
    if generation is None:
        return None
    observed = _int64((obj.get("status") or {}).get("observedGeneration"),
                      "status.observedGeneration")
    if observed is None or observed == generation:
        return None
    message = (f"{obj.get('kind', '')} generation is {generation}, but latest observed "
               f"generation is {observed}")
    return Result(IN_PROGRESS, message, "LatestGenerationNotObserved")


def _int64(value: Any, field: str) -> int | None:
    """unstructured.NestedInt64: absent is fine, any other type than an integer is an error."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{field} accessor error: {value!r} is of the type "
                        f"{type(value).__name__}, expected int64")
    return value


def _conditions(obj: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    conditions = (obj.get("status") or {}).get("conditions") or []
    if not isinstance(conditions, list) or not all(isinstance(c, Mapping) for c in conditions):
        raise TypeError("status.conditions is not a list of objects")
    return conditions
