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
annotation gets a new value. This module has the steps that choose what serves; the pass's
state is `rollout_pass.PassState`, judging the serving revision and building the `Plan` is
`rollout_serving`.
"""

from __future__ import annotations

from modelops import contract
from modelops.operator.revisions import (
    BAD, FAILED, NOT_YET_SERVING, ON_PROBATION, PROMOTED, RETIRED, ROLLED_BACK, STARTING,
    RevisionState,
    append_history, history_entry, iso, new_record, parse_iso, served, usable_target, whole)
from modelops.operator.rollout_pass import (
    AVAILABLE, SCALED_TO_ZERO, Plan, PlanInput, assess)
from modelops.operator.rollout_canary import CanarySteps
from modelops.operator.rollout_serving import ServingSteps

__all__ = ["Plan", "PlanInput", "RevisionState", "assess", "iso", "parse_iso", "plan_model"]


class _Pass(ServingSteps, CanarySteps):
    """One planning pass; see the module docstring for the order."""

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
        spec's revision is ready (see `plan`), so upgrading the operator is not an outage.
        Any ready pod is enough: a legacy Deployment mid-restart still serves, and this is
        decided once (the first pass writes records)."""
        rev = self.st.get("servingRevision")
        if self.records or not rev or rev == self.spec.revision or "legacyRevision" in self.st:
            return
        if self.observed(rev).ready:
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
            for key in ("rollbackDue", "shadow", "shadowStartedAt", "shadowFailedAt", "canary",
                        "canaryStep", "canaryStepStartedAt", "canaryFailedAt"):
                rec.pop(key, None)
            self.phase(rec, STARTING, "RetryRequested")
            self.event("Normal", "Retrying", f"Retrying version {rec['version']} "
                       f"({contract.ANNOTATION_RETRY} changed)")
        elif rec["phase"] == RETIRED and not served(rec):
            rec["changedAt"] = iso(self.now)
            self.phase(rec, STARTING, "Applied")
        for other in self.records.values():
            if other is not rec and other["phase"] in NOT_YET_SERVING:
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
            if self.shadow_gate(current, desired) and self.canary_gate(current, desired):
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


def plan_model(inp: PlanInput) -> Plan:
    return _Pass(inp).run()
