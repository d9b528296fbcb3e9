"""Alias pinning in a Model's pass: `models:/<name>@<alias>` becomes the spec the planner gets.

`pin(spec, status, annotations, resolve)` is pure apart from `resolve` (a callable returning the
alias's version now, or raising StartupFailure): it returns the pinned spec to plan with, the
status.mlflow record, the Events and the conditions to set. AliasMoved comes from
mlflow_alias.decide; AliasResolved says whether the last lookup worked. A failed lookup keeps the
recorded version serving (AliasResolved=False with the server's reason); with no recorded version
there is nothing to serve, so `spec` is None and the pass reports Ready=False instead of planning.
The sha256 pin applies to the model file of the version served: status.mlflow records the
sha256 the version was pinned with, and a changed spec.artifact.sha256 while the alias points
elsewhere accepts the move (it pins the new version's file), whatever aliasRollout says.
`AliasCache` keeps each answer (or failure) for a TTL, so a 1 s tick does not call the tracking
server on every pass; `resolver` binds it to resolve_alias with the operator's settings.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

from modelops.operator import mlflow_alias as ma
from modelops.operator.conditions import FALSE, READY, RECONCILING, STALLED, TRUE, apply_all
from modelops.operator.spec import ModelSpec
from modelops.serving.failures import StartupFailure

RESOLVED = "AliasResolved"
REASON_UNRESOLVED = "MlflowAliasUnresolved"
NEEDS_USER = ("ArtifactNotFound", "AccessDenied", "InvalidSettings")

Resolve = Callable[[str, str], str]  # (uri, tracking_uri) -> version


@dataclass(frozen=True)
class Pinned:
    spec: ModelSpec | None
    """The spec to plan with (alias pinned to a version), or None when nothing can be served."""
    mlflow: dict | None = None
    """status.mlflow to write (None: leave it as it is; {}: remove it, no alias any more)."""
    events: list[tuple[str, str, str]] = field(default_factory=list)
    conditions: dict[str, tuple[str, str, str] | None] = field(default_factory=dict)
    """Condition type -> (status, reason, message), for conditions.apply_all."""


def pin(spec: ModelSpec, status: Mapping[str, Any], annotations: Mapping[str, str],
        resolve: Resolve) -> Pinned:
    """The pinned spec and what to report; a spec without an alias passes through untouched."""
    uri = spec.artifact.uri
    if ma.alias_of(uri) is None:
        return Pinned(spec, {}, conditions={ma.CONDITION_MOVED: None, RESOLVED: None})
    recorded = status.get("mlflow") or {}
    source = spec.artifact.mlflow
    try:
        current = resolve(uri, source.tracking_uri if source else "")
    except StartupFailure as failure:
        return _unresolved(spec, recorded, status, failure)
    policy = ma.policy_of(source.alias_rollout if source else "", annotations)
    if recorded.get("sha256") not in (None, "", spec.artifact.sha256):
        policy = "Auto"  # a new sha256 pins the new version's file: the move is accepted
    decision = ma.decide(uri, recorded, current, policy)
    record = {**decision.status, "sha256": spec.artifact.sha256}
    conditions: dict[str, Any] = {RESOLVED: (TRUE, "Resolved", f"{uri} is version {current}")}
    if decision.condition is not None:
        moved = decision.condition
        conditions[ma.CONDITION_MOVED] = (moved["status"], moved["reason"], moved["message"])
    return Pinned(ma.pinned_spec(spec, decision.serve_version), record,
                  [decision.event] if decision.event else [], conditions)


def _unresolved(spec: ModelSpec, recorded: Mapping[str, str], status: Mapping[str, Any],
                failure: StartupFailure) -> Pinned:
    name, alias = ma.alias_of(spec.artifact.uri)
    served = recorded.get("version", "") if recorded.get("alias") == f"{name}@{alias}" else ""
    message = f"{failure.reason}: {failure.message}"
    conditions: dict[str, Any] = {RESOLVED: (FALSE, failure.reason, message)}
    before = next((c for c in status.get("conditions") or [] if c.get("type") == RESOLVED), {})
    new = before.get("status") != FALSE or before.get("reason") != failure.reason
    if served:
        note = (f"{spec.artifact.uri} could not be resolved ({message}); "
                f"still serving version {served}")
        return Pinned(ma.pinned_spec(spec, served), None,
                      [("Warning", REASON_UNRESOLVED, note)] if new else [], conditions)
    note = f"{spec.artifact.uri} could not be resolved and no version was recorded: {message}"
    stalled = failure.reason in NEEDS_USER
    conditions.update({READY: (FALSE, REASON_UNRESOLVED, note),
                       STALLED: (TRUE if stalled else FALSE, REASON_UNRESOLVED, note),
                       RECONCILING: None if stalled else (TRUE, REASON_UNRESOLVED, note)})
    return Pinned(None, None, [("Warning", REASON_UNRESOLVED, note)] if new else [], conditions)


def report(new_status: dict, pinned: Pinned, *, now: str, generation: int) -> dict:
    """Put the pin's status.mlflow and conditions into a status about to be written."""
    if pinned.mlflow:
        new_status["mlflow"] = pinned.mlflow
    elif pinned.mlflow is not None:
        new_status.pop("mlflow", None)
    new_status["conditions"] = apply_all(new_status.get("conditions") or [], pinned.conditions,
                                         now=now, generation=generation)
    return new_status


class AliasCache:
    """Answers of `resolve` per (uri, tracking_uri), each kept `ttl` seconds (failures too)."""

    def __init__(self, resolve: Resolve, ttl: float, clock: Callable[[], float] = time.monotonic):
        self._resolve, self._ttl, self._clock = resolve, ttl, clock
        self._answers: dict[tuple[str, str], tuple[float, str | StartupFailure]] = {}
        self._lock = threading.Lock()

    def __call__(self, uri: str, tracking_uri: str) -> str:
        key, now = (uri, tracking_uri), self._clock()
        with self._lock:
            found = self._answers.get(key)
        if found is None or now - found[0] >= self._ttl:
            try:
                answer: str | StartupFailure = self._resolve(uri, tracking_uri)
            except StartupFailure as failure:
                answer = failure
            found = (now, answer)
            with self._lock:
                self._answers[key] = found
        if isinstance(found[1], StartupFailure):
            raise found[1]
        return found[1]


def resolver(timeout: float) -> Resolve:
    """resolve_alias with the operator's timeout (its own MLFLOW_TRACKING_* environment)."""
    return lambda uri, tracking_uri: ma.resolve_alias(uri, tracking_uri=tracking_uri,
                                                      timeout=timeout)
