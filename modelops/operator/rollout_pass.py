"""The planner's inputs and outputs, and the state one planning pass works on (pure).

`PlanInput` is what a pass reads (spec, status, what the cluster shows, the latest decision),
`Plan` what it returns (replicas per revision, the Service's revision, the status, Events).
`assess` classifies one revision's Deployment. `PassState` holds the pass's working copy of the
status and answers the questions every step asks: which revision serves, what its rollback
target is, what the latest judged window said about a revision, what to keep warm behind a new
one. The steps themselves are in `rollout` (choosing what serves) and `rollout_serving` (judging
the serving revision and building the result).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any, Mapping

from modelops import contract
from modelops.operator.analysis import Decision
from modelops.operator.canary_gate import CanaryStats
from modelops.operator.revisions import (
    BAD, BAKING, FAILED, PROMOTED, STARTING, RevisionState, append_history, history_entry, iso,
    parse_iso, served, usable_target)
from modelops.operator.shadow_gate import ShadowStats
from modelops.operator.spec import ModelSpec

AVAILABLE, UNAVAILABLE, SCALED_TO_ZERO = "Available", "Unavailable", "ScaledToZero"


@dataclass(frozen=True)
class PlanInput:
    name: str
    spec: ModelSpec
    generation: int
    status: Mapping[str, Any]
    observed: Mapping[str, RevisionState]
    now: float
    annotations: Mapping[str, str] = field(default_factory=dict)
    decision: Decision | None = None
    shadow: Mapping[str, ShadowStats] = field(default_factory=dict)  # candidate revision -> stats
    canary: Mapping[str, CanaryStats] = field(default_factory=dict)  # the same, for this step


@dataclass(frozen=True)
class ShadowWiring:
    """Who mirrors to whom: the serving pods of `source` copy `percent` % of their requests to
    the candidate revision's Service, and hand it `canary_percent` % to answer (sticky by
    `canary_hash_header` when set)."""
    source: str
    candidate: str
    version: str
    percent: float
    tolerance: float
    canary_percent: float = 0.0
    canary_hash_header: str = ""


@dataclass
class Plan:
    deployments: dict[str, tuple[ModelSpec, int]]  # revision -> (spec of that revision, replicas)
    delete: list[str]
    service_revision: str
    service_version: str
    status: dict[str, Any]
    events: list[tuple[str, str, str]]  # (type, reason, message)
    shadow: ShadowWiring | None = None
    candidate_service: tuple[str, str] | None = None  # (revision, version) whose Service exists


def assess(record: Mapping[str, Any], state: RevisionState, *, replicas: int,
           deadline: float, now: float) -> tuple[str, str, str]:
    """How one revision is doing: (kind, reason, message); kind is Available, Starting,
    Unavailable (it served before: never a failure), ScaledToZero or Failed (never served:
    a permanent container reason, or not ready within `deadline` of its own last change)."""
    if replicas == 0:
        return SCALED_TO_ZERO, "ScaledToZero", "spec.replicas is 0"
    if state.available:
        return AVAILABLE, "Available", f"{state.ready}/{replicas} pods ready"
    pods = f"{state.ready}/{replicas} pods ready"
    if state.failure:
        reason, _, message = state.failure.partition(": ")
        reason = reason if reason.isidentifier() else "LoadFailed"
        if not served(record):
            return FAILED, reason, message or reason
        return UNAVAILABLE, "PodsUnavailable", f"{pods}; {reason}: {message}"
    if served(record):
        return UNAVAILABLE, "PodsUnavailable", pods
    changed = parse_iso(record.get("changedAt")) or now
    if state.deadline_exceeded or now - changed > deadline:
        return FAILED, "ProgressDeadlineExceeded", f"pods not ready within {int(deadline)}s"
    return STARTING, "RollingOut", pods


class PassState:
    """A planning pass's state (a copy of the status, the records by revision, the outcome and
    Events so far) and the small queries every step asks; the steps live in the subclasses."""

    def __init__(self, inp: PlanInput):
        self.inp, self.spec, self.now = inp, inp.spec, inp.now
        self.policy = inp.spec.rollback
        self.st: dict[str, Any] = copy.deepcopy(dict(inp.status))
        self.st.pop("conditions", None)
        self.records: dict[str, dict] = {r["revision"]: r for r in self.st.get("revisions") or []}
        self.history: list[dict] = self.st.setdefault("history", [])
        self.events: list[tuple[str, str, str]] = []
        self.outcome: tuple[str, ...] = ("", "", "")
        self.decision: Decision | None = None
        self.warm: set[str] = set()       # revisions scaled up for a pending rollback
        self.failover: str | None = None  # the Service's revision while the serving one is down
        self.shadowing: dict | None = None  # the candidate record receiving copies this pass
        self.canary: dict | None = None     # the candidate record answering a share this pass
        self.token = inp.annotations.get(contract.ANNOTATION_RETRY, "")

    # --- small helpers ------------------------------------------------------------------------
    def event(self, type_: str, reason: str, message: str) -> None:
        self.events.append((type_, reason, message))

    def say(self, state: str, reason: str, message: str, degraded: str = "") -> None:
        """Set the pass's outcome unless an earlier, more urgent step already did; `degraded`
        is Degraded's own reason when it differs from the step in progress."""
        if not self.outcome[0]:
            self.outcome = (state, reason, message, degraded) if degraded else (
                state, reason, message)

    def phase(self, rec: dict, phase: str, reason: str, message: str = "") -> None:
        if rec["phase"] == phase and rec.get("reason") == reason:
            return
        rec.update(phase=phase, reason=reason, message=message)
        if phase in BAD:
            rec["retryToken"] = self.token
        append_history(self.history, history_entry(rec, self.now, self.verdict(rec["revision"])))

    def shadow_wiring(self, source: str) -> ShadowWiring | None:
        return None  # rollout_shadow.ShadowSteps wires a candidate in shadow

    def observed(self, revision: str | None) -> RevisionState:
        return self.inp.observed.get(revision or "", RevisionState())

    def available(self, revision: str | None) -> bool:
        return self.spec.replicas > 0 and self.observed(revision).available

    def serving(self) -> dict | None:
        return self.records.get(self.st.get("servingRevision") or "")

    def target_of(self, rec: Mapping[str, Any] | None) -> dict | None:
        target = self.records.get((rec or {}).get("predecessor") or "")
        return target if usable_target(target) else None

    def verdict(self, revision: str) -> dict[str, Any]:
        """The latest judged window about `revision`: this pass's decision, else the one
        kept in status.analysis (most passes carry no decision)."""
        d = self.inp.decision
        if d is not None and (d.revision or self.inp.status.get("servingRevision")) == revision:
            return {"result": d.result, "consecutiveBreaches": d.consecutive_breaches,
                    "reason": d.reason, "message": d.message, "errorRate": d.error_rate,
                    "requests": round(d.requests), "quality": d.quality}
        analysis = self.st.get("analysis") or {}
        return analysis if analysis.get("revision") == revision else {}

    def breaching(self, rec: Mapping[str, Any]) -> bool:
        return bool(rec.get("rollbackDue")) or int(
            self.verdict(rec["revision"]).get("consecutiveBreaches") or 0) > 0

    def warm_behind(self, current: dict, new: dict) -> dict | None:
        """The rollback target kept warm behind `new`: the serving revision, else its own
        target, else `new`'s earlier one; healthy ones first, a breaching one only if there is
        nothing else (a revision degraded after promotion is still the last good one)."""
        candidates = [current, self.target_of(current), self.target_of(new)]
        good = [c for c in candidates if usable_target(c) and c is not new]
        healthy = [c for c in good if not self.breaching(c)]
        return (healthy or good or [None])[0]

    def serve(self, rec: dict) -> None:
        self.st["servingRevision"], self.st["servingVersion"] = rec["revision"], rec["version"]

    def enter_service(self, rec: dict, *, rebake: bool) -> None:
        self.serve(rec)
        rec["servedAt"] = rec.get("servedAt") or iso(self.now)
        if rec.get("promotedAt"):
            self.phase(rec, PROMOTED, "RolledBackTo")
        elif rebake:
            rec.update(bakeStartedAt=iso(self.now), judgedWindows=0)
            self.phase(rec, BAKING, "Serving")
