"""Model-based test of the rollout planner: random sequences of what users and the cluster do.

A hypothesis state machine applies versions, artifacts and pod configs (and reverts), scales
(including to 0), suspends and resumes, retries, asks for manual rollbacks, makes pods ready,
unready or failing, lets time pass, feeds Passed/Failed/Inconclusive windows about any revision,
turns the shadow and canary policies on and off and feeds their evidence and the users'
promote/abort; after every pass it checks the invariants of issues #10 and #17.
"""

from __future__ import annotations

import copy
from dataclasses import replace

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from modelops import contract
from modelops.operator.analysis import Decision
from modelops.operator.canary_gate import CanaryStats
from modelops.operator.revisions import HISTORY_LIMIT, ON_PROBATION, RevisionState
from modelops.operator.rollout import PlanInput, plan_model
from modelops.operator.shadow_gate import ShadowStats
from modelops.operator.spec import parse_model
from tests.factories import SHA_A, SHA_B, model_spec

T0 = 1_700_000_000.0
POLICY = {"window": "1m", "interval": "10s", "consecutiveBreaches": 2, "minRequests": 10,
          "bakeWindow": "5m", "minJudgedWindows": 2, "progressDeadlineSeconds": 120,
          "errorRateThreshold": 0.05}
CONFIGS = ({}, {"limits": {"memory": "64Mi"}})
SHADOW = {"minRows": 100, "maxDisagreement": 0.05, "maxErrorRate": 0.02, "maxDuration": "5m"}
CANARY = {"steps": [10, 50], "stepDuration": "30s", "minRequests": 20, "maxErrorRate": 0.05}
RESULTS = ("Passed", "Failed", "Inconclusive")


class PlannerMachine(RuleBasedStateMachine):
    def __init__(self):
        super().__init__()
        self.fields = {"version": "1", "sha256": SHA_A, "resources": {}, "replicas": 2,
                       "suspend": False, "shadow": False, "canary": False}
        self.shadow: dict[str, ShadowStats] = {}  # what the monitor measured, by candidate
        self.canary: dict[str, CanaryStats] = {}  # the same for the current canary step
        self.status: dict = {}
        self.now, self.generation = T0, 1
        self.annotations: dict[str, str] = {}
        self.replicas: dict[str, int] = {}   # revision -> replicas of its Deployment
        self.ready: dict[str, int] = {}
        self.failures: dict[str, str] = {}
        self.breaches: dict[str, int] = {}
        self.tokens = 0
        self.ever_served: set[str] = set()
        self.blocked: tuple[str, str] | None = None  # (revision, retry token) rolled back
        self.rolled_back: set[str] = set()
        self.plan = None
        self.seen: dict[str, RevisionState] = {}
        self.step()

    # --- the world --------------------------------------------------------------------------
    def spec_dict(self) -> dict:
        f = self.fields
        spec = model_spec(version=f["version"], sha256=f["sha256"], replicas=f["replicas"],
                          suspend=f["suspend"], rollback=f.get("rollback", POLICY))
        if f["resources"]:
            spec["resources"] = copy.deepcopy(f["resources"])
        if f["shadow"] or f["canary"]:
            spec["rollout"] = {**({"shadow": SHADOW} if f["shadow"] else {}),
                               **({"canary": CANARY} if f["canary"] else {})}
        return spec

    def step(self, seconds: float = 0.0, decision: Decision | None = None) -> None:
        self.now += seconds
        raw = self.spec_dict()
        before = copy.deepcopy(raw)
        self.seen = {rev: RevisionState(replicas=n, ready=min(self.ready.get(rev, 0), n),
                                        failure=self.failures.get(rev, ""))
                     for rev, n in self.replicas.items()}
        old_history = list(self.status.get("history") or [])
        before_serving = self.record(self.status.get("servingRevision"))
        before_records = {r["revision"]: r for r in self.status.get("revisions") or []}
        plan = plan_model(PlanInput(name="iris", spec=parse_model(raw),
                                    generation=self.generation, status=self.status,
                                    observed=self.seen, now=self.now,
                                    annotations=dict(self.annotations), decision=decision,
                                    shadow=dict(self.shadow), canary=dict(self.canary)))
        assert raw == before, "the planner never writes the spec"
        self.check_history(old_history, plan.status["history"])
        self.status, self.plan = plan.status, plan
        self.check_rollback_target(before_serving)
        self.check_canary_steps(before_records)
        for rev, (_, n) in plan.deployments.items():
            self.replicas[rev] = n
            self.ready[rev] = min(self.ready.get(rev, 0), n)
        for rev in plan.delete:
            self.replicas.pop(rev, None)
            self.ready.pop(rev, None)
        self.track()

    def track(self) -> None:
        spec = parse_model(self.spec_dict())
        token = self.annotations.get(contract.ANNOTATION_RETRY, "")
        if self.blocked and (self.blocked[0] != spec.revision or self.blocked[1] != token):
            self.blocked = None
        kept = {rec["revision"] for rec in self.status.get("revisions") or []}
        self.ever_served &= kept  # a dropped record's revision, re-applied, starts afresh
        for rec in self.status.get("revisions") or []:
            if rec.get("servedAt"):
                self.ever_served.add(rec["revision"])
            if rec["phase"] == "RolledBack" and rec["revision"] == spec.revision \
                    and rec["revision"] not in self.rolled_back:
                self.blocked = (rec["revision"], token)  # judged now, under this token
        self.rolled_back = {r["revision"] for r in self.status.get("revisions") or []
                            if r["phase"] == "RolledBack"}

    def apply(self, **changes) -> None:
        self.fields.update(changes)
        self.generation += 1
        self.step(1)

    # --- rules ------------------------------------------------------------------------------
    @rule(version=st.sampled_from(["1", "2", "3"]), sha=st.sampled_from([SHA_A, SHA_B]),
          config=st.sampled_from(range(len(CONFIGS))))
    def apply_revision(self, version, sha, config):
        self.apply(version=version, sha256=sha, resources=CONFIGS[config])

    @rule(replicas=st.sampled_from([0, 1, 2, 3]))
    def scale(self, replicas):
        self.apply(replicas=replicas)

    @rule(threshold=st.sampled_from([0.01, 0.5]))
    def edit_threshold(self, threshold):
        self.apply(rollback={**POLICY, "errorRateThreshold": threshold})

    @rule(on=st.booleans())
    def shadow_policy(self, on):
        self.apply(shadow=on)

    @rule(data=st.data(), rows=st.sampled_from([0, 50, 200]),
          disagree=st.sampled_from([0.0, 0.02, 0.3]), errors=st.sampled_from([0, 5, 100]),
          action=st.sampled_from(["", "", contract.ANNOTATION_PROMOTE, contract.ANNOTATION_ABORT]))
    def shadow_evidence(self, data, rows, disagree, errors, action):
        """The monitor's counters for a candidate in shadow; now and then a user's verdict."""
        shadowing = sorted(r["revision"] for r in self.status.get("revisions") or []
                           if r["phase"] == "Shadowing")
        if shadowing:
            rev = data.draw(st.sampled_from(shadowing))
            self.shadow[rev] = ShadowStats(rows=rows, disagreements=rows * disagree,
                                           outcomes={"mirrored": rows, "error": errors})
        if action:
            self.annotations[action] = self.fields["version"]
        self.step(10)
        self.annotations.pop(action, None)

    @rule(on=st.booleans())
    def canary_policy(self, on):
        self.apply(canary=on)

    @rule(version=st.sampled_from(["2", "3"]), sha=st.sampled_from([SHA_A, SHA_B]))
    def roll_out_a_canary(self, version, sha):
        """What a user of canaries does most: a new version with the policy on, pods ready."""
        self.fields.update(canary=True)
        self.apply(version=version, sha256=sha)
        self.settle()

    @rule(data=st.data(), requests=st.sampled_from([0, 10, 40, 200]),
          failed=st.sampled_from([0.0, 0.0, 0.02, 0.3, 1.0]),
          action=st.sampled_from(["", "", "", contract.ANNOTATION_PROMOTE,
                                  contract.ANNOTATION_ABORT]), seconds=st.sampled_from([10, 40]))
    def canary_evidence(self, data, requests, failed, action, seconds):
        """The monitor's counters for the candidate's current step; now and then a user's
        verdict. An abort must leave a ready revision answering everyone."""
        in_canary = sorted(r["revision"] for r in self.status.get("revisions") or []
                           if r["phase"] == "Canary")
        if in_canary:
            rev = data.draw(st.sampled_from(in_canary))
            bad = round(requests * failed)
            self.canary[rev] = CanaryStats(codes={"200": requests - bad, "500": bad})
        if action:
            self.annotations[action] = self.fields["version"]
        aborted = self.record(parse_model(self.spec_dict()).revision) \
            if action == contract.ANNOTATION_ABORT else None
        self.step(seconds)
        self.annotations.pop(action, None)
        if aborted and aborted["phase"] == "Canary" and not self.fields["suspend"]:
            wiring = self.plan.shadow
            assert wiring is None or wiring.candidate != aborted["revision"], wiring
            assert self.plan.service_revision != aborted["revision"]

    @rule()
    def a_healthy_canary_step(self):
        """Enough good answers and time for any step in progress (the path to promotion)."""
        for rec in self.status.get("revisions") or []:
            if rec["phase"] == "Canary":
                self.canary[rec["revision"]] = CanaryStats(codes={"200": 200})
        self.step(40)

    @rule(suspend=st.booleans())
    def suspend(self, suspend):
        self.apply(suspend=suspend)

    @rule()
    def retry(self):
        self.tokens += 1
        self.annotations[contract.ANNOTATION_RETRY] = f"r{self.tokens}"
        self.step(1)

    @rule(version=st.sampled_from(["1", "2", "3"]))
    def manual_rollback(self, version):
        self.tokens += 1
        self.annotations[contract.ANNOTATION_ROLLBACK_TO] = f"{version}@m{self.tokens}"
        self.step(1)

    @precondition(lambda self: self.replicas)
    @rule(data=st.data(), how=st.sampled_from(["ready", "unready", "one-down", "fail"]))
    def pods(self, data, how):
        rev = data.draw(st.sampled_from(sorted(self.replicas)))
        if how == "ready" and rev not in self.failures:
            self.ready[rev] = self.replicas[rev]
        elif how == "unready":
            self.ready[rev] = 0
        elif how == "one-down":
            self.ready[rev] = max(0, self.ready.get(rev, 0) - 1)
        elif how == "fail" and not self.ready.get(rev):
            self.failures[rev] = "LoadFailed: container server exited with code 1 (OOMKilled)"
        self.step(1)

    @rule()
    def settle(self):
        """Every Deployment without a failing pod becomes fully ready (the usual case)."""
        for rev, n in self.replicas.items():
            if rev not in self.failures:
                self.ready[rev] = n
        self.step(1)

    @rule(seconds=st.sampled_from([5, 30, 61, 200, 400]))
    def time_passes(self, seconds):
        self.step(seconds)

    @rule(data=st.data(), result=st.sampled_from(RESULTS))
    def window(self, data, result):
        """A judged window; usually about the serving revision, sometimes about another."""
        serving = self.status.get("servingRevision")
        choices = sorted({*self.replicas, *([serving] if serving else [])})
        if not choices:
            return
        about_serving = serving and data.draw(st.integers(0, 4)) > 0
        rev = serving if about_serving else data.draw(st.sampled_from(choices))
        count = {"Passed": 0, "Inconclusive": self.breaches.get(rev, 0)}.get(
            result, self.breaches.get(rev, 0) + 1)
        self.breaches[rev] = count
        decision = Decision(result=result, error_rate=0.3 if result == "Failed" else 0.0,
                            requests=200, consecutive_breaches=count,
                            rollback=result == "Failed" and count >= 2,
                            reason="ErrorRateAboveThreshold", message="window", revision=rev)
        rec = self.record(serving)
        target = self.record((rec or {}).get("predecessor"))
        healthy = (target is not None and target.get("servedAt")
                   and target["phase"] not in ("RolledBack", "Failed")
                   and self.seen_ready(target["revision"]))
        must_roll_back = (decision.rollback and rev == serving and rec is not None
                          and rec["phase"] in ON_PROBATION and healthy
                          and not self.fields["suspend"] and self.fields["replicas"] > 0)
        self.step(10, decision=decision)
        # as the handler does: the window is kept in status.analysis for the passes after it
        self.status = {**self.status, "analysis": {
            "revision": rev, "consecutiveBreaches": count, "result": result,
            "reason": decision.reason, "message": decision.message}}
        if must_roll_back:
            assert self.status["servingRevision"] != serving, \
                "a breaching revision with a healthy predecessor is rolled back"

    # --- invariants -------------------------------------------------------------------------
    def check_canary_steps(self, before: dict) -> None:
        """A step is only left on evidence that passed it (or the user's promote), and the
        monitor's count starts again with each step."""
        for rec in self.status.get("revisions") or []:
            old = before.get(rec["revision"]) or {}
            if old.get("phase") != "Canary" or rec.get("canaryStep", 0) == old.get("canaryStep"):
                continue
            stats = self.canary.pop(rec["revision"], None)
            promoted = self.annotations.get(contract.ANNOTATION_PROMOTE) == rec["version"]
            assert promoted or (stats is not None and stats.requests >= CANARY["minRequests"]
                                and stats.failed / stats.requests <= CANARY["maxErrorRate"]), \
                (old, rec, stats)

    @invariant()
    def the_canary_weight_is_the_current_steps(self):
        """Issue 17: the serving pods hand the candidate no more than its recorded step's
        share, and only a candidate in Canary that never failed a gate gets any."""
        wiring = self.plan.shadow
        if wiring is None or not wiring.canary_percent:
            return
        rec = self.record(wiring.candidate)
        assert rec["phase"] == "Canary" and self.fields["canary"], rec
        assert not rec.get("shadowFailedAt") and not rec.get("canaryFailedAt"), rec
        assert wiring.canary_percent <= CANARY["steps"][rec["canaryStep"]], (wiring, rec)
        assert wiring.percent == 0  # no copies while it answers users


    def record(self, revision):
        return next((r for r in self.status.get("revisions") or []
                     if r["revision"] == revision), None)

    def seen_ready(self, revision) -> bool:
        n = self.replicas.get(revision, 0)
        return n > 0 and self.ready.get(revision, 0) >= n and revision not in self.failures

    @staticmethod
    def check_history(old: list, new: list) -> None:
        assert len(new) <= HISTORY_LIMIT
        for added in range(len(new) + 1):
            if (old + new[len(new) - added:])[-HISTORY_LIMIT:] == new:
                return
        raise AssertionError("history entries never change once written")

    def check_rollback_target(self, before: dict | None) -> None:
        """A revision rolled out behind one that served well keeps a rollback target, even
        if the one before breached (degraded after promotion, recovered or not)."""
        now = self.record(self.status.get("servingRevision"))
        if before is None or now is None or now["revision"] == before["revision"]:
            return
        if (self.record(before["revision"]) or {}).get("phase") in (None, "RolledBack", "Failed"):
            return  # a rollback (the bad revision may be dropped at once), not a rollout
        if now["phase"] == "Baking" and not now.get("promotedAt") \
                and before.get("servedAt") and before["phase"] not in ("RolledBack", "Failed"):
            assert now.get("predecessor"), (before, now)

    @invariant()
    def promoted_and_failing_is_degraded(self):
        """Degraded stays while the last window about a promoted serving revision failed."""
        serving = self.record(self.status.get("servingRevision"))
        analysis = self.status.get("analysis") or {}
        by_type = {c["type"]: c["status"] for c in self.status["conditions"]}
        if serving and serving["phase"] == "Promoted" and not self.fields["suspend"] \
                and self.seen.get(serving["revision"], RevisionState()).available \
                and self.fields["replicas"] > 0 \
                and analysis.get("revision") == serving["revision"] \
                and analysis.get("result") == "Failed" and by_type.get("Ready") == "True":
            assert by_type.get("Degraded") == "True", self.status["conditions"]

    @invariant()
    def conditions_agree(self):
        by_type = {c["type"]: c["status"] for c in self.status["conditions"]}
        assert len(by_type) == len(self.status["conditions"])
        if by_type.get("Stalled") == "True":
            assert by_type.get("Ready") != "True" and by_type.get("Reconciling") != "True"

    @invariant()
    def served_is_never_failed(self):
        for rec in self.status.get("revisions") or []:
            if rec["revision"] in self.ever_served:
                assert rec["phase"] != "Failed", rec

    @invariant()
    def rolled_back_does_not_serve_again(self):
        if self.blocked:
            assert self.status.get("servingRevision") != self.blocked[0]
            assert self.plan.service_revision != self.blocked[0]

    @invariant()
    def service_selects_a_ready_revision_when_one_exists(self):
        if self.fields["suspend"] or self.fields["replicas"] == 0:
            return
        ready = {rev for rev, s in self.seen.items() if s.ready > 0}
        serving = self.record(self.status.get("servingRevision"))
        candidates = set()
        if serving:
            candidates.add(serving["revision"])
            if serving["phase"] in ON_PROBATION and serving.get("predecessor"):
                target = self.record(serving["predecessor"])
                if target and target["phase"] not in ("RolledBack", "Failed") \
                        and self.seen.get(target["revision"], RevisionState()).available:
                    candidates.add(target["revision"])
        if candidates & ready:
            assert self.plan.service_revision in ready, (self.plan.service_revision, ready)

    @invariant()
    def nothing_in_shadow_or_failed_there_answers_users(self):
        """Issue 17: a revision in shadow, or one that failed its gate, is never the Service's;
        copies go from the Service's revision to a candidate in shadow only."""
        for rec in self.status.get("revisions") or []:
            if rec["phase"] == "Shadowing" or rec.get("shadowFailedAt"):
                assert not rec.get("servedAt"), rec
                assert self.plan.service_revision != rec["revision"], rec
        wiring = self.plan.shadow
        if wiring is not None:
            assert wiring.source == self.plan.service_revision != wiring.candidate
            phase = self.record(wiring.candidate)["phase"]
            assert phase in ("Shadowing", "Canary") and not self.fields["suspend"]
            assert self.fields["shadow" if phase == "Shadowing" else "canary"]

    @invariant()
    def a_candidates_service_is_ready_before_anything_is_sent_to_it(self):
        """The candidate's own Service is in every plan that wires it, and in none without a
        shadow or canary policy; it never names the Service's revision or one with no pods."""
        wanted, wiring = self.plan.candidate_service, self.plan.shadow
        if wiring is not None:
            assert wanted == (wiring.candidate, wiring.version), (wanted, wiring)
        if wanted is not None:
            revision, _ = wanted
            assert revision != self.plan.service_revision
            assert self.fields["shadow"] or self.fields["canary"]
            assert self.plan.deployments[revision][1] > 0, self.plan.deployments

    @invariant()
    def service_and_serving_exist(self):
        if not self.fields["suspend"]:
            assert self.plan.service_revision in self.plan.deployments
            assert self.status["servingRevision"] in self.plan.deployments


PlannerMachine.TestCase.settings = settings(
    max_examples=300, stateful_step_count=40, deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
TestPlanner = PlannerMachine.TestCase
