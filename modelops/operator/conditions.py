"""Status conditions, metav1.Condition shaped, and their summary for Model and ModelPipeline (pure).

`set_condition` keeps `lastTransitionTime` when the status did not change, so recomputing the
same conditions writes nothing. The condition types follow kstatus and Argo CD: `Ready` is the
summary, `Reconciling=True` while rolling out or baking, `Stalled=True` only when a user action
is needed. Reasons are CamelCase constants.
"""

from __future__ import annotations

from typing import Any, Iterable, Mapping

READY = "Ready"
RECONCILING = "Reconciling"
STALLED = "Stalled"
METRICS_AVAILABLE = "MetricsAvailable"
DEGRADED = "Degraded"

TRUE, FALSE, UNKNOWN = "True", "False", "Unknown"


def set_condition(conditions: Iterable[Mapping[str, Any]], type_: str, status: str, reason: str,
                  message: str, *, now: str, generation: int | None) -> list[dict]:
    """Return conditions with `type_` set; lastTransitionTime moves only when status changes."""
    result, found = [], False
    for condition in conditions:
        if condition.get("type") != type_:
            result.append(dict(condition))
            continue
        found = True
        changed = condition.get("status") != status
        result.append(_condition(type_, status, reason, message,
                                 now if changed else condition.get("lastTransitionTime", now),
                                 generation))
    if not found:
        result.append(_condition(type_, status, reason, message, now, generation))
    return result


def remove_condition(conditions: Iterable[Mapping[str, Any]], type_: str) -> list[dict]:
    return [dict(c) for c in conditions if c.get("type") != type_]


def get_condition(conditions: Iterable[Mapping[str, Any]], type_: str) -> Mapping[str, Any] | None:
    return next((c for c in conditions if c.get("type") == type_), None)


def _condition(type_: str, status: str, reason: str, message: str, transition: str,
               generation: int | None) -> dict:
    condition = {"type": type_, "status": status, "reason": reason, "message": message,
                 "lastTransitionTime": transition}
    if generation is not None:
        condition["observedGeneration"] = generation
    return condition


def apply_all(conditions: Iterable[Mapping[str, Any]], wanted: Mapping[str, tuple[str, str, str] | None],
              *, now: str, generation: int | None) -> list[dict]:
    """Set every (status, reason, message) in `wanted`; a None value removes that type."""
    result = [dict(c) for c in conditions]
    for type_, value in wanted.items():
        if value is None:
            result = remove_condition(result, type_)
        else:
            result = set_condition(result, type_, *value, now=now, generation=generation)
    order = {t: i for i, t in enumerate((READY, RECONCILING, STALLED, METRICS_AVAILABLE, DEGRADED))}
    return sorted(result, key=lambda c: order.get(c.get("type"), len(order)))


def pipeline_ready(steps: list[Mapping[str, Any]]) -> tuple[str, str, str]:
    """Ready only when every step's Model is Ready; the reason names the first that is not."""
    for step in steps:
        if not step.get("exists", True):
            return FALSE, "StepModelMissing", (
                f"step {step['name']}: Model {step['model']} does not exist")
        if step.get("stalled"):
            return FALSE, "StepStalled", (
                f"step {step['name']}: Model {step['model']} is stalled ({step['reason']}) "
                "and needs a user action")
        if not step.get("ready"):
            return FALSE, "StepNotReady", (
                f"step {step['name']}: Model {step['model']} is not Ready"
                + (f" ({step['reason']})" if step.get("reason") else ""))
    return TRUE, "AllStepsReady", f"all {len(steps)} steps are Ready"


def model_conditions(outcome: tuple[str, ...], decision: Any,
                     previous: list, *, now: str, generation: int) -> list[dict]:
    """Ready / Reconciling / Stalled / Degraded / MetricsAvailable from the pass's outcome
    (state, reason, message[, Degraded's own reason]).

    One row per outcome state (Ready, Reconciling, Stalled, Degraded); None removes the type.
    No row has Stalled=True beside Ready=True or Reconciling=True. While the serving version
    breaches and something else is in progress (HoldingDegraded), Reconciling names the step in
    progress and Degraded what is wrong, when the outcome says so."""
    state, reason, message, *degraded_reason = outcome
    breach = degraded_reason[0] if degraded_reason else reason
    t, f = TRUE, FALSE
    table = {
        "Serving": ((t, reason, message), None, (f, "Serving", message), None),
        "Baking": ((t, reason, message), (t, "Baking", message), (f, "Baking", message), None),
        "Holding": ((t, reason, message), (t, reason, message), (f, reason, message), None),
        "HoldingDegraded": ((t, "ServingDegraded", message), (t, reason, message),
                            (f, reason, message), (t, breach, message)),
        "Progressing": ((f, reason, message), (t, reason, message), (f, reason, message), None),
        "Unavailable": ((f, reason, message), (t, reason, message), (f, reason, message), None),
        "ScaledToZero": ((t, reason, message), None, (f, reason, message), None),
        "Stalled": ((f, reason, message), None, (t, reason, message), None),
        "Degraded": ((t, "ServingDegraded", message), None, (f, reason, message),
                     (t, reason, message)),
        "Suspended": ((f, reason, message), None, (f, reason, message), None),
        "": ((UNKNOWN, "Pending", "not observed yet"), None, None, None),
    }
    ready, reconciling, stalled, degraded = table[state]
    wanted = {READY: ready, RECONCILING: reconciling, STALLED: stalled,
              DEGRADED: degraded}
    if decision is not None:
        available = decision.reason != "MetricsUnavailable"
        wanted[METRICS_AVAILABLE] = (
            t if available else f, "MetricsScraped" if available else "MetricsUnavailable",
            "serving metrics were read" if available else decision.message)
    return apply_all(previous, wanted, now=now, generation=generation)
