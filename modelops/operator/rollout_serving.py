"""The second half of a planning pass (pure): judge the revision that serves, then build the
result.

`assess_serving` classifies the serving revision's Deployment (starting, available, unavailable,
scaled to zero, failed) and, once it is available, `bake` promotes it after its bake window with
enough judged windows, or holds and says why. `plan` turns the records into the `Plan`: the
replicas per revision (serving, desired, the warm rollback target, `keepPrevious` older ones at
zero), the Deployments to delete, the Service's revision and the status with its conditions.
"""

from __future__ import annotations

from modelops.operator.conditions import model_conditions
from modelops.operator.revisions import (
    BAD, FAILED, ON_PROBATION, PROMOTED, ROLLED_BACK, SERVING, STARTING, iso, parse_iso,
    served, usable_target)
from modelops.operator.rollout_pass import (
    SCALED_TO_ZERO, UNAVAILABLE, PassState, Plan, ShadowWiring, assess)


class ServingSteps(PassState):
    """`assess_serving` and `plan`, the steps after the serving revision is chosen."""

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
        stopped = desired["phase"] == ROLLED_BACK or desired.get("shadowFailedAt") \
            or desired.get("canaryFailedAt")
        keep.setdefault(desired["revision"], 0 if stopped else n)
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
        wiring = self.shadow_wiring(service) if touch else None
        return Plan(deployments=deployments, delete=delete, service_revision=service,
                    service_version=version, status=st, events=self.events, shadow=wiring,
                    candidate_service=self.candidate_service(service, wiring) if touch else None)

    def candidate_service(self, service: str,
                          wiring: ShadowWiring | None) -> tuple[str, str] | None:
        """(revision, version) of the candidate whose own Service should exist: the wired one,
        or, with a shadow or canary policy, a new revision whose pods are starting. Creating it
        then gives kube-proxy the seconds the pods take to start: a Service it has not
        programmed yet sends its packets out of the node (pinned.py)."""
        if wiring is not None:
            return wiring.candidate, wiring.version
        desired = self.records.get(self.spec.revision)
        if desired is None or desired["revision"] == service or served(desired) \
                or not desired.get("replicas") or desired["phase"] == FAILED \
                or (self.spec.shadow is None and self.spec.canary is None):
            return None
        return desired["revision"], desired["version"]

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

