"""The shadow step of a planning pass (pure): a ready new revision answers no one until its
predictions, compared with the serving revision's on copies of live traffic, pass the gate.

`shadow_gate` runs when the desired revision is ready and would take the Service. Without a
`spec.rollout.shadow` policy, or for a revision that served before (a revert), or once it
passed, it lets the switch happen. Otherwise the revision enters Shadowing (an Event, the clock
`shadowStartedAt`), the pass names it in `shadowing` (so the plan wires the serving pods to copy
to it) and `shadow_gate.judge` decides on the evidence the monitor measured since the shadow
started: Pass (it takes traffic and bakes as usual), Fail (Failed, scaled to zero, blocked until
the revision changes or the retry annotation does; the serving revision is untouched) or Wait.
The `modelops.io/promote` and `modelops.io/abort` annotations, naming the version, pass or
fail it by hand.
"""

from __future__ import annotations

from modelops import contract
from modelops.operator.revisions import FAILED, SHADOWING, iso, parse_iso, served
from modelops.operator.rollout_pass import PassState, ShadowWiring
from modelops.operator.shadow_gate import FAIL, PASS, judge
from modelops.operator.analysis import format_duration


class ShadowSteps(PassState):
    """`shadow_gate`, and the wiring the plan takes from it."""

    def shadow_gate(self, current: dict, desired: dict) -> bool:
        """True when `desired` may take the traffic now."""
        policy, version = self.spec.shadow, desired["version"]
        if policy is None or served(desired) or desired.get("shadowPassedAt"):
            return True
        if self.inp.annotations.get(contract.ANNOTATION_PROMOTE) == version:
            self.passed(desired, "PromotedByUser", f"the {contract.ANNOTATION_PROMOTE} "
                        f"annotation names version {version}")
            return True
        if desired["phase"] != SHADOWING:
            desired.update(shadowStartedAt=iso(self.now), changedAt=iso(self.now))
            desired.pop("shadow", None)
            self.phase(desired, SHADOWING, "ShadowStarted")
            self.event("Normal", "ShadowStarted", (
                f"Version {version} is ready; it gets copies of {policy.percent:g}% of version "
                f"{current['version']}'s requests and answers no one until it passes the "
                "shadow gate"))
        stats = self.inp.shadow.get(desired["revision"])
        if stats is not None:
            desired["shadow"] = stats.as_status()
        verdict, reason, message = judge(policy, stats)
        if self.inp.annotations.get(contract.ANNOTATION_ABORT) == version:
            verdict, reason, message = FAIL, "Aborted", (
                f"the {contract.ANNOTATION_ABORT} annotation names version {version}")
        if verdict == PASS:
            self.passed(desired, reason, message)
            return True
        if verdict == FAIL:
            self.failed_shadow(current, desired, reason, message)
            return False
        self.shadowing = desired
        started = parse_iso(desired.get("shadowStartedAt")) or self.now
        if self.now - started > policy.max_duration_seconds:
            self.hold(current, "InsufficientShadowTraffic", (
                f"version {version} has been in shadow for over "
                f"{format_duration(policy.max_duration_seconds)} without enough evidence "
                f"({message}); set {contract.ANNOTATION_PROMOTE}={version} to let it take "
                "traffic anyway"))
        else:
            self.hold(current, "Shadowing", f"version {version} is in shadow: {message}")
        return False

    def hold(self, current: dict, reason: str, message: str) -> None:
        """The outcome while a candidate is judged beside the serving version; the serving
        version's own failing window must still show as Degraded."""
        serving_verdict = self.verdict(current["revision"])
        failing = serving_verdict.get("result") == "Failed"
        state, breach = ("HoldingDegraded", serving_verdict.get("reason") or "") if failing \
            else ("Holding", "")
        serving = (f"version {current['version']} is serving"
                   + (f" and breaching ({serving_verdict.get('message')})" if failing else ""))
        self.say(state, reason, f"{serving}; {message}", breach)

    def passed(self, desired: dict, reason: str, message: str) -> None:
        desired["shadowPassedAt"] = iso(self.now)
        self.event("Normal", "ShadowPassed", f"Version {desired['version']} passed its shadow "
                   f"gate ({reason}): {message}")

    def failed_shadow(self, current: dict, desired: dict, reason: str, message: str) -> None:
        """Stopped in shadow: it never answered a user; its pods go to zero."""
        self.candidate_failed(current, desired, gate="shadow gate", stamp="shadowFailedAt",
                              event="ShadowFailed", reason=reason, message=message,
                              after="it answered no user request")

    def candidate_failed(self, current: dict, desired: dict, *, gate: str, stamp: str,
                         event: str, reason: str, message: str, after: str) -> None:
        """A candidate stopped by its gate (`stamp` set, so its pods go to zero); the serving
        version is untouched."""
        version = desired["version"]
        desired[stamp] = iso(self.now)
        self.phase(desired, FAILED, reason, message)
        self.event("Warning", event, f"Version {version} failed its {gate}: {message}; {after}")
        self.say("Stalled", reason, f"version {version} failed its {gate}: {message}; "
                 f"version {current['version']} keeps serving")

    def shadow_wiring(self, source: str) -> ShadowWiring | None:
        rec, policy = self.shadowing, self.spec.shadow
        if rec is None or policy is None or source == rec["revision"]:
            return None
        return ShadowWiring(source=source, candidate=rec["revision"], version=rec["version"],
                            percent=policy.percent, tolerance=policy.tolerance)
