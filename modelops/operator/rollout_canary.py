"""The canary step of a planning pass (pure): a ready new revision answers a growing share of
the users' requests, step by step, before it takes the Service.

`canary_gate` runs after the shadow gate let a revision through. Without a `spec.rollout.canary`
policy, for a revision that served before, or once it passed, it lets the switch happen.
Otherwise the revision enters Canary at the first step (an Event, the clocks
`canaryStepStartedAt`), the pass names it in `canary` (so the plan tells the serving pods to hand
it that step's share) and `canary_gate.judge` decides the step on what the serving pods counted
since it started: Pass (the next step, or after the last one the switch and the bake as usual),
Fail (Failed, scaled to zero, the serving version answers everyone again) or Wait. The
`modelops.io/promote` and `modelops.io/abort` annotations, naming the version, pass or fail it
by hand. The weight the pods get is always the recorded step's: it never runs ahead of the
evidence.
"""

from __future__ import annotations

from modelops import contract
from modelops.operator.canary_gate import FAIL, PASS, judge
from modelops.operator.revisions import CANARY, iso, parse_iso, served
from modelops.operator.rollout_pass import ShadowWiring
from modelops.operator.rollout_shadow import ShadowSteps
from modelops.operator.shadow_gate import ShadowPolicy


class CanarySteps(ShadowSteps):
    """`canary_gate`, and the wiring the plan takes from it."""

    def canary_gate(self, current: dict, desired: dict) -> bool:
        """True when `desired` may take all the traffic now."""
        policy, version = self.spec.canary, desired["version"]
        if policy is None or served(desired) or desired.get("canaryPassedAt"):
            return True
        if self.inp.annotations.get(contract.ANNOTATION_PROMOTE) == version:
            self.canary_passed(desired, f"the {contract.ANNOTATION_PROMOTE} annotation names "
                               f"version {version}")
            return True
        if desired["phase"] != CANARY:
            desired.update(canaryStep=0, canaryStepStartedAt=iso(self.now),
                           changedAt=iso(self.now))
            desired.pop("canary", None)
            self.phase(desired, CANARY, "CanaryStarted")
            self.event("Normal", "CanaryStarted", (
                f"Version {version} is ready; it answers {policy.steps[0]:g}% of version "
                f"{current['version']}'s requests (step 1 of {len(policy.steps)})"))
        step = min(int(desired.get("canaryStep") or 0), len(policy.steps) - 1)
        weight = policy.steps[step]
        stats = self.inp.canary.get(desired["revision"])
        held = self.now - (parse_iso(desired.get("canaryStepStartedAt")) or self.now)
        desired["canary"] = {**(stats.as_status() if stats else {}), "step": step + 1,
                             "steps": len(policy.steps), "weight": weight}
        verdict, reason, message = judge(policy, stats, held=held, weight=weight)
        if self.inp.annotations.get(contract.ANNOTATION_ABORT) == version:
            verdict, reason, message = FAIL, "Aborted", (
                f"the {contract.ANNOTATION_ABORT} annotation names version {version}")
        if verdict == FAIL:
            self.failed_canary(current, desired, reason, message)
            return False
        if verdict == PASS and step + 1 == len(policy.steps):
            self.canary_passed(desired, message)
            return True
        if verdict == PASS:
            step, weight = step + 1, policy.steps[step + 1]
            desired.update(canaryStep=step, canaryStepStartedAt=iso(self.now))
            desired["canary"] = {"step": step + 1, "steps": len(policy.steps), "weight": weight}
            self.event("Normal", "CanaryStepPassed", f"Version {version} passed step {step} "
                       f"({message}); it now answers {weight:g}%")
            message = f"at {weight:g}%: step {step + 1} started"
        self.canary = desired
        self.hold(current, "Canary", f"version {version} is in canary, step {step + 1} of "
                  f"{len(policy.steps)}: {message}")
        return False

    def canary_passed(self, desired: dict, message: str) -> None:
        desired["canaryPassedAt"] = iso(self.now)
        self.event("Normal", "CanaryPassed", f"Version {desired['version']} passed its canary "
                   f"steps ({message}); it takes all the traffic")

    def failed_canary(self, current: dict, desired: dict, reason: str, message: str) -> None:
        """Aborted: the serving version answers everyone again; the candidate goes to zero."""
        self.candidate_failed(current, desired, gate="canary", stamp="canaryFailedAt",
                              event="CanaryAborted", reason=reason, message=message,
                              after=f"version {current['version']} answers every request again")

    def shadow_wiring(self, source: str) -> ShadowWiring | None:
        rec, policy = self.canary, self.spec.canary
        if rec is None or policy is None or source == rec["revision"]:
            return super().shadow_wiring(source)
        weight = policy.steps[min(int(rec.get("canaryStep") or 0), len(policy.steps) - 1)]
        tolerance = (self.spec.shadow or ShadowPolicy()).tolerance
        return ShadowWiring(source=source, candidate=rec["revision"], version=rec["version"],
                            percent=0.0, tolerance=tolerance, canary_percent=weight,
                            canary_hash_header=policy.hash_header)
