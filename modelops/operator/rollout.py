"""The Model's rollout and rollback planner (pure).

`plan_model` takes what the user wants (the spec), what the operator remembers (the revision
records in status, see `revisions`), what the cluster shows (a `RevisionState` per revision's
Deployment) and the latest analysis `Decision`, and returns a `Plan`: the replicas per
revision, the revision the Service selects, the new status and the Events to post. A pass runs
in a fixed order: the desired revision's record, a manual rollback request, the decision (only
if it is about the serving revision), `choose_serving` (rollout, revert, automatic rollback)
and `assess` of the serving revision (starting, available, unavailable, scaled to zero,
failed). Conditions come from the resulting outcome through one table (`conditions`). It never
touches the spec; a revision judged bad stays blocked until the revision changes or the retry
annotation gets a new value.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any, Mapping

from modelops import contract
from modelops.operator.analysis import Decision
from modelops.operator.conditions import model_conditions
from modelops.operator.revisions import (
    BAD, BAKING, FAILED, ON_PROBATION, PROMOTED, RETIRED, ROLLED_BACK, SERVING, STARTING,
    RevisionState, append_history, history_entry, iso, new_record, parse_iso, served,
    usable_target, whole)
from modelops.operator.spec import ModelSpec

__all__ = ["Plan", "PlanInput", "RevisionState", "assess", "iso", "parse_iso", "plan_model"]

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


@dataclass
class Plan:
    deployments: dict[str, tuple[ModelSpec, int]]  # revision -> (spec of that revision, replicas)
    delete: list[str]
    service_revision: str
    service_version: str
    status: dict[str, Any]
    events: list[tuple[str, str, str]]  # (type, reason, message)


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


class _Pass:
    """One planning pass over a copy of the status; see the module docstring for the order."""

    def __init__(self, inp: PlanInput):
        self.inp, self.spec, self.now = inp, inp.spec, inp.now
        self.policy = inp.spec.rollback
        self.st: dict[str, Any] = copy.deepcopy(dict(inp.status))
        self.st.pop("conditions", None)
        self.records: dict[str, dict] = {r["revision"]: r for r in self.st.get("revisions") or []}
        self.history: list[dict] = self.st.setdefault("history", [])
        self.events: list[tuple[str, str, str]] = []
        self.outcome: tuple[str, str, str] = ("", "", "")
        self.decision: Decision | None = None
        self.warm: set[str] = set()       # revisions scaled up for a pending rollback
        self.failover: str | None = None  # the Service's revision while the serving one is down
        self.token = inp.annotations.get(contract.ANNOTATION_RETRY, "")

    # --- small helpers ------------------------------------------------------------------------
    def event(self, type_: str, reason: str, message: str) -> None:
        self.events.append((type_, reason, message))

    def say(self, state: str, reason: str, message: str) -> None:
        """Set the pass's outcome unless an earlier, more urgent step already did."""
        if not self.outcome[0]:
            self.outcome = (state, reason, message)

    def phase(self, rec: dict, phase: str, reason: str, message: str = "") -> None:
        if rec["phase"] == phase and rec.get("reason") == reason:
            return
        rec.update(phase=phase, reason=reason, message=message)
        if phase in BAD:
            rec["retryToken"] = self.token
        append_history(self.history, history_entry(rec, self.now, self.verdict(rec["revision"])))

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

    # --- the pass -----------------------------------------------------------------------------
    def run(self) -> Plan:
        self.st["desiredVersion"] = self.spec.version
        self.st["desiredRevision"] = self.spec.revision
        self.st.pop("rollout", None)
        if self.spec.suspend:
            self.st.setdefault("suspendedAt", iso(self.now))
            self.say("Suspended", "Suspended", "spec.suspend is true: the operator takes no "
                     "action and the bake clock is stopped")
            return self.plan(touch=False)
        self.resume()
        self.adopt_legacy()
        desired = self.desired()
        self.manual_rollback(desired)
        self.judge()
        self.choose_serving(desired)
        self.assess_serving()
        return self.plan(touch=True)

    def resume(self) -> None:
        """After a suspend, shift the bake and deadline clocks by the time spent suspended."""
        since = parse_iso(self.st.pop("suspendedAt", None))
        if since is None:
            return
        for rec in self.records.values():
            for key in ("bakeStartedAt", "changedAt"):
                if rec.get(key):
                    rec[key] = iso(parse_iso(rec[key]) + self.now - since)

    def adopt_legacy(self) -> None:
        """A Model served by an operator from before revision records (an upgrade): status
        names a serving revision with no record. Its Deployment keeps the Service until the
        spec's revision is ready (see `plan`), so upgrading the operator is not an outage."""
        rev = self.st.get("servingRevision")
        if self.records or not rev or rev == self.spec.revision or "legacyRevision" in self.st:
            return
        if self.observed(rev).available:
            self.st["legacyRevision"] = rev
            self.event("Normal", "Adopted", f"Version {self.st.get('servingVersion')} "
                       f"(Deployment from an earlier operator) keeps serving until revision "
                       f"{self.spec.revision} is ready")

    def desired(self) -> dict:
        """The record of the revision the spec asks for; a retry token unblocks it."""
        rev = self.spec.revision
        rec = self.records.get(rev)
        if rec is None:
            rec = self.records[rev] = new_record(self.spec, self.now)
            append_history(self.history, history_entry(rec, self.now))
        elif rec["phase"] in BAD and rec.get("retryToken") != self.token:
            rec.update(changedAt=iso(self.now), judgedWindows=0)
            rec.pop("rollbackDue", None)
            self.phase(rec, STARTING, "RetryRequested")
            self.event("Normal", "Retrying", f"Retrying version {rec['version']} "
                       f"({contract.ANNOTATION_RETRY} changed)")
        elif rec["phase"] == RETIRED and not served(rec):
            rec["changedAt"] = iso(self.now)
            self.phase(rec, STARTING, "Applied")
        for other in self.records.values():
            if other is not rec and other["phase"] == STARTING:
                self.phase(other, RETIRED, "ReplacedByNewerRevision")
        return rec

    def judge(self) -> None:
        """Keep the decision only if it judged the revision still serving; count evidence."""
        d = self.inp.decision
        about = d and (d.revision or self.inp.status.get("servingRevision"))
        rec = self.serving()
        if d is None or rec is None or about != rec["revision"]:
            return
        self.decision = d
        if d.judged and rec["phase"] in ON_PROBATION:
            rec["judgedWindows"] = int(rec.get("judgedWindows") or 0) + 1
        if d.rollback and self.policy.enabled and rec["phase"] in ON_PROBATION:
            if self.policy.dry_run:
                self.event("Warning", "WouldRollBack", f"Dry run: would roll back version "
                           f"{rec['version']}: {d.message}")
            else:
                rec["rollbackDue"] = {"reason": d.reason, "message": d.message,
                                      "errorRate": d.error_rate, "requests": round(d.requests)}

    def choose_serving(self, desired: dict) -> None:
        """Decide the revision the Service selects: first start, automatic rollback, rollout."""
        current = self.serving()
        if current is None:
            self.serve(desired)
            self.event("Normal", "RollingOut", f"Deploying first version {desired['version']}")
            return
        if current.get("rollbackDue"):
            self.auto_rollback(current)
        current = self.serving()
        if desired is not current:
            self.roll_out(current, desired)

    def auto_rollback(self, current: dict) -> None:
        due, target = current["rollbackDue"], self.target_of(current)
        if target is None:
            current.pop("rollbackDue")
            self.say("Degraded", "NoPreviousVersion", f"{due['message']}; there is no earlier "
                     "good version to roll back to")
            return
        if not self.available(target["revision"]):
            self.warm.add(target["revision"])
            self.say("HoldingDegraded", "RollbackTargetUnavailable", (
                f"version {current['version']} breaches ({due['message']}); its rollback "
                f"target {target['version']} is not ready yet: scaled up, switching when ready"))
            return
        current.pop("rollbackDue")
        self.st["rollback"] = whole(self.st.get("rollback"), {
            "fromVersion": current["version"], "toVersion": target["version"],
            "fromRevision": current["revision"], "toRevision": target["revision"],
            "time": iso(self.now), "reason": due["reason"], "errorRate": due["errorRate"],
            "threshold": self.policy.error_rate_threshold,
            "window": f"{int(self.policy.window_seconds)}s", "requests": due["requests"],
            "message": due["message"]})
        self.phase(current, ROLLED_BACK, due["reason"], due["message"])
        self.enter_service(target, rebake=True)
        self.event("Warning", "RolledBack", f"Rolled back version {current['version']} to "
                   f"{target['version']}: {due['message']}")

    def roll_out(self, current: dict, desired: dict) -> None:
        version = desired["version"]
        if desired["phase"] == ROLLED_BACK:
            record = self.st.get("rollback") or {}
            self.say("Stalled", "RolledBack", (
                f"version {version} was rolled back to {record.get('toVersion')}: "
                f"{record.get('message') or desired.get('message')}; apply a new version or "
                f"set the {contract.ANNOTATION_RETRY} annotation to retry"))
            return
        if desired["phase"] == FAILED:
            self.say("Stalled", desired["reason"], f"version {version} failed: "
                     f"{desired.get('message')}; version {current['version']} keeps serving")
            return
        kind, reason, message = assess(desired, self.observed(desired["revision"]),
                                       replicas=self.spec.replicas, now=self.now,
                                       deadline=self.policy.progress_deadline_seconds)
        if kind == AVAILABLE:
            self.switch(current, desired)
        elif kind == FAILED:
            self.phase(desired, FAILED, reason, message)
            self.event("Warning", reason, f"Version {version} failed: {message}")
            self.say("Stalled", reason, f"version {version} failed: {message}; version "
                     f"{current['version']} keeps serving")
        elif kind != SCALED_TO_ZERO:
            self.say("Progressing", "RollingOut", f"waiting for version {version}: {message}")

    def switch(self, current: dict, new: dict) -> None:
        """A rollout (or a revert to a promoted revision) reaches the Service."""
        keep_warm = self.warm_behind(current, new)
        if current["phase"] not in BAD:
            self.phase(current, RETIRED, "ReplacedByNewerRevision")
        if new.get("promotedAt"):
            self.phase(new, PROMOTED, "RevertedToLastGood")
            self.serve(new)
            self.event("Normal", "Promoted", f"Version {new['version']} was promoted before: "
                       "serving it without a bake")
            return
        new["predecessor"] = keep_warm["revision"] if keep_warm else None
        self.enter_service(new, rebake=True)
        warm = f"; version {keep_warm['version']} stays warm" if keep_warm else ""
        self.event("Normal", "RolledOut", f"Version {new['version']} is serving{warm}")

    def enter_service(self, rec: dict, *, rebake: bool) -> None:
        self.serve(rec)
        rec["servedAt"] = rec.get("servedAt") or iso(self.now)
        if rec.get("promotedAt"):
            self.phase(rec, PROMOTED, "RolledBackTo")
        elif rebake:
            rec.update(bakeStartedAt=iso(self.now), judgedWindows=0)
            self.phase(rec, BAKING, "Serving")

    def manual_rollback(self, desired: dict) -> None:
        """`modelops rollback --to VERSION` (annotation `VERSION@token`): each value once."""
        value = self.inp.annotations.get(contract.ANNOTATION_ROLLBACK_TO, "")
        if not value or value == self.st.get("rollbackRequest"):
            return
        version = value.split("@", 1)[0]
        current = self.serving()
        found = sorted((r for r in self.records.values() if r["version"] == version
                        and usable_target(r)), key=lambda r: r["servedAt"])
        pick = found[-1] if found else None
        if pick is None or pick is current:
            self.st["rollbackRequest"] = value
            why = "it is serving" if pick else "no kept revision of it served without failing"
            self.event("Normal" if pick else "Warning", "RollbackRequestIgnored",
                       f"Rollback to version {version} ignored: {why}")
            return
        if not self.available(pick["revision"]):
            self.warm.add(pick["revision"])
            self.say("Progressing", "ManualRollback",
                     f"waiting for version {version}'s pods before rolling back to it")
            return
        self.st["rollbackRequest"] = value
        self.st["rollback"] = whole(self.st.get("rollback"), {
            "fromVersion": (current or desired)["version"], "toVersion": version,
            "fromRevision": (current or desired)["revision"], "toRevision": pick["revision"],
            "time": iso(self.now), "reason": "ManualRollback", "requested": value,
            "message": f"requested with the {contract.ANNOTATION_ROLLBACK_TO} annotation"})
        for rec in {id(r): r for r in (current, desired) if r is not None}.values():
            if rec is not pick and rec["phase"] not in BAD:
                bad = rec is desired
                self.phase(rec, ROLLED_BACK if bad else RETIRED, "ManualRollback")
        pick["promotedAt"] = pick.get("promotedAt") or iso(self.now)
        self.enter_service(pick, rebake=False)
        self.event("Warning", "RolledBack", f"Rolled back version {(current or desired)['version']}"
                   f" to {version} as requested by the {contract.ANNOTATION_ROLLBACK_TO} annotation")

    def assess_serving(self) -> None:
        rec = self.serving()
        kind, reason, message = assess(rec, self.observed(rec["revision"]),
                                       replicas=self.spec.replicas, now=self.now,
                                       deadline=self.policy.progress_deadline_seconds)
        version = rec["version"]
        if kind == SCALED_TO_ZERO:
            self.say("ScaledToZero", "ScaledToZero", f"spec.replicas is 0: version {version} "
                     "has no pods; scale up to serve")
        elif kind == FAILED:
            self.phase(rec, FAILED, reason, message)
            self.event("Warning", reason, f"Version {version} failed: {message}")
            self.say("Stalled", reason, f"version {version} failed: {message}")
        elif kind == STARTING:
            self.say("Progressing", "RollingOut", f"waiting for version {version}: {message}")
        elif kind == UNAVAILABLE:
            self.unavailable(rec, message)
        else:
            if not served(rec):
                self.enter_service(rec, rebake=True)
                self.event("Normal", "RolledOut", f"Version {version} is serving")
            self.bake(rec)

    def unavailable(self, rec: dict, message: str) -> None:
        """A revision that served lost pods: not a failure. With no ready pod at all and a
        ready warm target, the Service points at the target until it recovers."""
        target = self.target_of(rec) if rec["phase"] in ON_PROBATION else None
        extra = ""
        if self.observed(rec["revision"]).ready == 0 and target and \
                self.available(target["revision"]):
            self.failover = target["revision"]
            extra = f"; traffic goes to warm version {target['version']} until it recovers"
        self.say("Unavailable", "PodsUnavailable",
                 f"version {rec['version']} is serving with {message}{extra}")

    def bake(self, rec: dict) -> None:
        """Promote after the bake window with enough judged windows, else hold and say why."""
        version = rec["version"]
        if rec["phase"] == PROMOTED:
            last = self.verdict(rec["revision"])
            if last.get("result") == "Failed":  # until a window passes, not just this pass
                self.say("Degraded", last.get("reason") or "ErrorRateAboveThreshold",
                         f"version {version} is promoted (no automatic rollback): "
                         f"{last.get('message') or 'its last window failed'}")
            self.say("Serving", "Serving", f"version {version} is serving")
            return
        started = parse_iso(rec.get("bakeStartedAt")) or self.now
        left = self.policy.bake_window_seconds - (self.now - started)
        judged, needed = int(rec.get("judgedWindows") or 0), self.policy.min_judged_windows
        target = self.target_of(rec)
        evidence = f"{judged} of {needed} windows judged"
        last = self.verdict(rec["revision"])
        if target is None and last.get("result") == "Failed":  # until a window passes
            self.say("Degraded", "NoPreviousVersion", f"{last.get('message')}; there is no "
                     "earlier good version to roll back to")
        if left > 0 or self.breaching(rec):
            self.say("Baking", "Baking", f"version {version} is serving; automatic rollback "
                     f"stays armed for {max(int(left), 0)}s more ({evidence})")
            return
        if judged >= needed or target is None or self.policy.on_bake_timeout == "Promote":
            reason = "BakeWindowPassed" if judged >= needed else "BakeWindowPassedWithoutEvidence"
            rec["promotedAt"] = iso(self.now)
            self.phase(rec, PROMOTED, reason)
            self.event("Normal", "Promoted", f"Version {version} passed its bake window "
                       f"({evidence}) and is now the last good version")
            self.say("Serving", "Serving", f"version {version} is serving")
            return
        self.phase(rec, SERVING, "InsufficientTraffic")
        self.say("Holding", "InsufficientTraffic", (
            f"version {version}'s bake window is over but only {evidence} with enough traffic; "
            f"it is not promoted and version {target['version']} stays warm"))

    # --- the result ---------------------------------------------------------------------------
    def replicas(self) -> dict[str, int]:
        """Serving, desired, warm target(s) at full size; keepPrevious more served ones at 0."""
        n, current = self.spec.replicas, self.serving()
        desired = self.records[self.spec.revision]
        keep = {current["revision"]: n}
        keep.setdefault(desired["revision"], 0 if desired["phase"] == ROLLED_BACK else n)
        if current["phase"] in ON_PROBATION or current.get("rollbackDue"):
            target = self.target_of(current)
            if target:
                keep[target["revision"]] = n
        for rev in self.warm:
            keep[rev] = n
        older = sorted((r for r in self.records.values() if usable_target(r)
                        and r["revision"] not in keep), key=lambda r: r["servedAt"])
        for rec in older[::-1][:self.policy.keep_previous]:
            keep[rec["revision"]] = 0
        return keep

    def plan(self, *, touch: bool) -> Plan:
        st = self.st
        if not touch:
            deployments, delete = {}, []
        else:
            keep = self.replicas()
            for rev, n in keep.items():
                rec = self.records[rev]
                if n and not rec.get("replicas") and not served(rec):
                    rec["changedAt"] = iso(self.now)  # the progress deadline starts again
                rec["replicas"] = n
            self.records = {r: rec for r, rec in self.records.items() if r in keep}
            deployments = {rev: (self.spec.from_record(self.records[rev]), n)
                           for rev, n in keep.items()}
            delete = sorted(rev for rev in self.inp.observed if rev not in keep
                            and rev != st.get("legacyRevision"))
        st["revisions"] = list(self.records.values())
        self.summary()
        service = self.failover or self.legacy_service() or st.get("servingRevision") \
            or self.spec.revision
        st["conditions"] = model_conditions(
            self.outcome, self.decision, self.inp.status.get("conditions") or [],
            now=iso(self.now), generation=self.inp.generation)
        st["observedGeneration"] = self.inp.generation
        version = (self.records.get(service) or {}).get("version", self.spec.version)
        return Plan(deployments=deployments, delete=delete, service_revision=service,
                    service_version=version, status=st, events=self.events)

    def legacy_service(self) -> str | None:
        """The adopted legacy revision while the spec's one has not served; dropped after."""
        legacy = self.st.get("legacyRevision")
        if legacy and (served(self.serving()) or not self.observed(legacy).ready):
            self.st.pop("legacyRevision")
            return None
        return legacy

    def summary(self) -> None:
        """The flat fields printer columns, the CLI and the monitor read."""
        st, current = self.st, self.serving()
        st["servingSince"] = (current or {}).get("bakeStartedAt") or (current or {}).get(
            "servedAt") if served(current) else None
        good = self.last_good(current)
        if good:
            st["lastGoodRevision"], st["lastGoodVersion"] = good["revision"], good["version"]

    def last_good(self, current: dict | None) -> dict | None:
        """The promoted revision a rollback would go to: the serving one if promoted (a
        revert serves an older promotion again), else its promoted target, else the newest
        promotion kept."""
        target = self.target_of(current)
        promoted = sorted((r for r in self.records.values() if r.get("promotedAt")
                           and r["phase"] not in BAD), key=lambda r: r["promotedAt"])
        for rec in ((current or {}).get("phase") == PROMOTED and current,
                    target and target.get("promotedAt") and target, *promoted[::-1]):
            if rec:
                return rec
        return None


def plan_model(inp: PlanInput) -> Plan:
    return _Pass(inp).run()
