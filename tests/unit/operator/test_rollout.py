"""The rollout/rollback state machine, driven pass by pass as the handlers drive it."""

from __future__ import annotations

from dataclasses import replace

import pytest

from modelops import contract
from modelops.operator.analysis import Decision
from modelops.operator.conditions import get_condition
from modelops.operator.rollout import PlanInput, RevisionState, plan_model
from modelops.operator.spec import parse_model
from tests.factories import SHA_A, SHA_B, SHA_C, model_spec

T0 = 1_700_000_000.0
FAIL = Decision(result="Failed", error_rate=0.3, requests=200, consecutive_breaches=2,
                rollback=True, reason="ErrorRateAboveThreshold", message="error rate 30% > 5%")
PASS = Decision(result="Passed", error_rate=0.0, requests=200, consecutive_breaches=0,
                rollback=False, reason="ErrorRateWithinThreshold", message="error rate 0%")


class World:
    """A Model's status plus the Deployments the cluster 'shows', advanced pass by pass."""

    def __init__(self, **spec):
        self.spec, self.generation, self.status, self.now = model_spec(**spec), 1, {}, T0
        self.ready: set[str] = set()
        self.failures: dict[str, str] = {}
        self.annotations: dict[str, str] = {}
        self.existing: set[str] = set()
        self.ready_pods: dict[str, int] = {}  # overrides `ready` (2 of 2) for a revision
        self.shadow: dict = {}  # candidate revision -> ShadowStats, as the monitor measures
        self.canary: dict = {}  # candidate revision -> CanaryStats for its current step

    def apply(self, **spec):
        self.spec = model_spec(**spec)
        self.generation += 1

    def step(self, seconds: float = 0, decision: Decision | None = None):
        self.now += seconds
        if decision is not None and not decision.revision:
            decision = replace(decision, revision=self.status.get("servingRevision", ""))
        spec = parse_model(self.spec)
        observed = {rev: RevisionState(replicas=2, ready=self.ready_pods.get(
                                           rev, 2 if rev in self.ready else 0),
                                       failure=self.failures.get(rev, ""))
                    for rev in self.existing}
        plan = plan_model(PlanInput(name="iris", spec=spec, generation=self.generation,
                                    status=self.status, observed=observed, now=self.now,
                                    annotations=self.annotations, decision=decision,
                                    shadow=self.shadow, canary=self.canary))
        self.status = plan.status
        self.existing = (self.existing | set(plan.deployments)) - set(plan.delete)
        return plan

    def condition(self, type_):
        c = get_condition(self.status["conditions"], type_)
        return (c["status"], c["reason"]) if c else None

    def revision(self, version, sha, **spec):
        return parse_model(model_spec(version=version, sha256=sha, **spec)).revision

    def record(self, revision):
        return next(r for r in self.status["revisions"] if r["revision"] == revision)

    def roll_out(self, version, sha, **spec) -> str:
        """Apply a version, let its pods become ready and the pass after that run: its revision."""
        self.apply(version=version, sha256=sha, **spec)
        self.step(1)
        revision = self.revision(version, sha, **spec)
        self.ready.add(revision)
        self.step(1)
        return revision

    def judged(self, n, seconds=10):
        for _ in range(n):
            self.step(seconds, decision=PASS)


def serving_v1(world: World) -> str:
    """Bring version 1 up and past its bake window."""
    v1 = world.revision("1", SHA_A)
    world.step()
    world.ready.add(v1)
    world.step()
    world.step(301)  # the first version has nothing to keep warm: promoted without evidence
    assert world.status["lastGoodVersion"] == "1"
    return v1


def baking_v2(world: World, **spec) -> str:
    """v1 promoted, then v2 applied and serving (baking)."""
    serving_v1(world)
    v2 = world.roll_out("2", SHA_B, **spec)
    assert world.status["servingRevision"] == v2
    return v2


def test_first_version_serves_then_is_promoted_after_bake():
    world = World()
    plan = world.step()
    v1 = world.revision("1", SHA_A)
    assert plan.service_revision == v1 and plan.deployments[v1][1] == 2
    assert world.condition("Ready") == ("False", "RollingOut")
    assert world.condition("Reconciling") == ("True", "RollingOut")
    world.ready.add(v1)
    plan = world.step(5)
    assert world.condition("Ready") == ("True", "Baking")
    assert ("Normal", "RolledOut", "Version 1 is serving") in plan.events
    plan = world.step(301)
    assert world.condition("Ready") == ("True", "Serving")
    assert world.condition("Reconciling") is None
    assert world.status["lastGoodVersion"] == "1"
    assert [e[1] for e in plan.events] == ["Promoted"]
    assert world.status["history"][-1]["phase"] == "Promoted"
    assert world.status["observedGeneration"] == 1


def test_second_pass_with_nothing_changed_changes_nothing():
    world = World()
    serving_v1(world)
    before = world.status
    plan = world.step(1)
    assert plan.status == before and plan.events == []


def test_new_version_comes_up_beside_the_old_and_switches_when_ready():
    world = World()
    v1 = serving_v1(world)
    world.apply(version="2", sha256=SHA_B)
    v2 = world.revision("2", SHA_B)
    plan = world.step(1)
    assert plan.service_revision == v1
    assert plan.deployments[v2][1] == 2 and plan.deployments[v1][1] == 2
    assert world.condition("Ready") == ("False", "RollingOut")
    world.ready.add(v2)
    plan = world.step(1)
    assert plan.service_revision == v2
    assert plan.deployments[v1][1] == 2, "the last good version stays warm during the bake"
    assert world.status["servingVersion"] == "2" and world.status["lastGoodVersion"] == "1"
    world.judged(3)
    plan = world.step(301)
    assert world.status["lastGoodVersion"] == "2"
    assert plan.deployments[v1][1] == 0, "scaled down after promotion"


def test_breach_during_bake_rolls_back_and_is_not_retried_on_reapply():
    world = World()
    v1 = serving_v1(world)
    world.roll_out("2", SHA_B)
    plan = world.step(10, decision=FAIL)
    assert plan.service_revision == v1
    assert world.status["servingVersion"] == "1"
    assert world.status["rollback"]["fromVersion"] == "2"
    assert world.status["rollback"]["toVersion"] == "1"
    assert world.condition("Stalled") == ("True", "RolledBack")
    assert world.condition("Ready") == ("False", "RolledBack")
    assert any(e[:2] == ("Warning", "RolledBack") for e in plan.events)
    # Argo CD re-applies the same spec: same generation, nothing retried, Service stays on v1
    for _ in range(3):
        plan = world.step(30)
        assert plan.service_revision == v1 and plan.events == []
    assert plan.deployments[world.revision("2", SHA_B)][1] == 0


def test_retry_annotation_and_new_generation_retry():
    world = World()
    serving_v1(world)
    v2 = world.roll_out("2", SHA_B)
    world.step(10, decision=FAIL)
    world.annotations[contract.ANNOTATION_RETRY] = "try-again"
    plan = world.step(1)
    assert plan.service_revision == v2, "v2 pods are still ready, so the retry serves at once"
    assert world.condition("Ready") == ("True", "Baking")


def test_dry_run_reports_but_does_not_roll_back():
    world = World(rollback={"dryRun": True, "bakeWindow": "5m"})
    serving_v1(world)
    world.roll_out("2", SHA_B, rollback={"dryRun": True, "bakeWindow": "5m"})
    plan = world.step(10, decision=FAIL)
    assert world.status["servingVersion"] == "2"
    assert any(e[1] == "WouldRollBack" for e in plan.events)


def test_revert_to_last_good_is_promoted_without_bake():
    world = World()
    v1 = serving_v1(world)
    world.apply(version="2", sha256=SHA_B)
    world.step(1)
    world.apply(version="1", sha256=SHA_A)
    plan = world.step(1)
    assert plan.service_revision == v1
    assert world.condition("Ready") == ("True", "Serving")
    assert [h["phase"] for h in world.status["history"]][-2:] == ["Starting", "Retired"]
    assert world.record(v1)["phase"] == "Promoted"


def test_checksum_mismatch_stalls_with_the_containers_reason_and_old_keeps_serving():
    world = World()
    v1 = serving_v1(world)
    world.apply(version="2", sha256=SHA_C)
    v2 = world.revision("2", SHA_C)
    world.step(1)
    world.failures[v2] = "ChecksumMismatch: artifact sha256 is aaaa but spec says cccc"
    plan = world.step(1)
    assert plan.service_revision == v1
    assert world.condition("Stalled") == ("True", "ChecksumMismatch")
    assert "artifact sha256 is aaaa" in get_condition(world.status["conditions"], "Stalled")["message"]
    assert world.status["history"][-1]["phase"] == "Failed"
    assert ("Warning", "ChecksumMismatch") in [e[:2] for e in plan.events]
    assert world.step(1).events == [], "the failure is announced once"


def test_progress_deadline_fails_the_rollout():
    policy = {"progressDeadlineSeconds": 60, "bakeWindow": "5m"}
    world = World(rollback=policy)
    serving_v1(world)
    world.apply(version="2", sha256=SHA_B, rollback=policy)
    world.step(1)
    world.step(61)
    assert world.condition("Stalled") == ("True", "ProgressDeadlineExceeded")
    assert world.status["servingVersion"] == "1"


def test_first_version_breach_has_nothing_to_roll_back_to():
    world = World()
    v1 = world.revision("1", SHA_A)
    world.step()
    world.ready.add(v1)
    world.step(1)
    plan = world.step(10, decision=FAIL)
    assert plan.service_revision == v1 and plan.delete == []
    assert world.condition("Degraded") == ("True", "NoPreviousVersion")


def _judge(world: World, decision: Decision, seconds: float = 10):
    """One window as the handler records it: the decision, then status.analysis."""
    plan = world.step(seconds, decision=decision)
    world.status["analysis"] = {
        "revision": world.status["servingRevision"], "result": decision.result,
        "consecutiveBreaches": decision.consecutive_breaches, "reason": decision.reason,
        "message": decision.message}
    return plan


def test_breach_after_promotion_only_degrades_until_a_window_passes():
    world = World()
    v1 = serving_v1(world)
    plan = _judge(world, FAIL)
    assert plan.service_revision == v1
    assert world.condition("Degraded") == ("True", "ErrorRateAboveThreshold")
    assert world.condition("Ready")[0] == "True"
    for _ in range(3):  # passes between windows carry no decision: Degraded stays
        world.step(1)
        assert world.condition("Degraded") == ("True", "ErrorRateAboveThreshold")
    _judge(world, PASS)
    world.step(1)
    assert world.condition("Degraded") is None


@pytest.mark.parametrize("recovered", [True, False])
def test_v3_after_v1_degraded_after_promotion_still_rolls_back_to_v1(recovered):
    """The cluster test's sequence: v1 promoted, Degraded (and recovered or not), then v3
    breaches during its bake: v1 is v3's rollback target either way (the last good one)."""
    world = World()
    v1 = serving_v1(world)
    _judge(world, replace(FAIL, rollback=False, consecutive_breaches=1))
    if recovered:
        _judge(world, PASS)
    world.apply(version="3", sha256=SHA_C)
    v3 = world.revision("3", SHA_C)
    world.step(1)
    world.ready.add(v3)
    plan = world.step(1)
    assert plan.service_revision == v3 and world.record(v3)["predecessor"] == v1
    assert plan.deployments[v1][1] == 2, "v1 stays warm"
    plan = _judge(world, FAIL)
    assert plan.service_revision == v1
    assert world.condition("Stalled") == ("True", "RolledBack")
    assert world.status["servingVersion"] == "1"


def test_suspend_touches_nothing():
    world = World()
    serving_v1(world)
    world.apply(version="2", sha256=SHA_B, suspend=True)
    plan = world.step(1)
    assert plan.deployments == {} and plan.delete == []
    assert world.condition("Ready") == ("False", "Suspended")


@pytest.mark.parametrize("keep", [1, 2])
def test_keep_previous_bounds_warm_deployments(keep):
    world = World(rollback={"keepPrevious": keep, "bakeWindow": "1m"})
    world.step()
    for n, sha in enumerate([SHA_A, SHA_B, SHA_C, "d" * 64], start=1):
        world.roll_out(str(n), sha, rollback={"keepPrevious": keep, "bakeWindow": "1m"})
        world.judged(3)
        world.step(61)
    assert world.status["lastGoodVersion"] == "4"
    assert len(world.existing) == 1 + keep


def test_manual_rollback_annotation_serves_an_earlier_version_once():
    world = World(rollback={"bakeWindow": "1m", "keepPrevious": 1})
    v1 = serving_v1(world)
    world.roll_out("2", SHA_B, rollback={"bakeWindow": "1m", "keepPrevious": 1})
    world.judged(3)
    world.step(61)
    assert world.status["lastGoodVersion"] == "2"
    world.ready.discard(v1)  # v1 was scaled to zero after v2's promotion
    world.annotations[contract.ANNOTATION_ROLLBACK_TO] = "1@t1"
    plan = world.step(1)
    assert plan.deployments[v1][1] == 2, "scaled back up first"
    assert plan.service_revision != v1
    world.ready.add(v1)
    plan = world.step(1)
    assert plan.service_revision == v1
    assert world.status["rollback"]["reason"] == "ManualRollback"
    assert world.status["lastGoodVersion"] == "1"
    assert world.condition("Stalled") == ("True", "RolledBack"), "spec still asks for v2"
    assert world.step(5).events == [], "the annotation is handled once"


def test_manual_rollback_to_a_version_that_never_served_is_ignored():
    world = World()
    v1 = serving_v1(world)
    world.annotations[contract.ANNOTATION_ROLLBACK_TO] = "7@t1"
    plan = world.step(1)
    assert plan.service_revision == v1
    assert [e[1] for e in plan.events] == ["RollbackRequestIgnored"]
    assert world.step(1).events == []


# --- the review's findings, one test each -----------------------------------------------------

def test_F1_a_serving_version_losing_pods_is_unavailable_not_failed():
    world = World()
    v1 = serving_v1(world)
    world.step(2000)
    world.apply(replicas=3)  # scale: the Deployment is briefly short of pods
    world.ready.discard(v1)
    plan = world.step(700)
    assert world.condition("Ready") == ("False", "PodsUnavailable")
    assert world.condition("Reconciling") == ("True", "PodsUnavailable")
    assert world.condition("Stalled")[0] == "False"
    assert world.record(v1)["phase"] == "Promoted"
    assert not [e for e in plan.events if e[0] == "Warning"]
    world.ready.add(v1)
    world.step(1)
    assert world.condition("Ready") == ("True", "Serving")


def test_F1_replicas_zero_is_its_own_state_and_back():
    world = World()
    v1 = serving_v1(world)
    world.apply(replicas=0)
    world.ready.discard(v1)
    plan = world.step(2000)
    assert plan.deployments[v1][1] == 0
    assert world.condition("Ready") == ("True", "ScaledToZero")
    assert world.condition("Stalled")[0] == "False"
    world.apply(replicas=2)
    plan = world.step(5000)
    assert plan.deployments[v1][1] == 2
    assert world.condition("Ready") == ("False", "PodsUnavailable")
    world.ready.add(v1)
    world.step(1)
    assert world.condition("Ready") == ("True", "Serving")


def test_F2_no_evidence_holds_with_insufficient_traffic_and_keeps_predecessor_warm():
    world = World()
    v2 = baking_v2(world)
    v1 = world.revision("1", SHA_A)
    world.step(10, decision=replace(PASS, result="Inconclusive", reason="TooFewRequests"))
    plan = world.step(400)
    assert world.record(v2)["phase"] == "Serving"
    assert world.condition("Ready") == ("True", "InsufficientTraffic")
    assert world.condition("Reconciling") == ("True", "InsufficientTraffic")
    assert plan.deployments[v1][1] == 2, "the rollback target stays warm"
    assert world.status["lastGoodVersion"] == "1"
    world.judged(3)
    assert world.record(v2)["phase"] == "Promoted"


def test_F2_on_bake_timeout_promote_promotes_without_evidence():
    policy = {"bakeWindow": "5m", "onBakeTimeout": "Promote"}
    world = World(rollback=policy)
    v2 = baking_v2(world, rollback=policy)
    world.step(400)
    assert world.record(v2)["phase"] == "Promoted"
    assert world.record(v2)["reason"] == "BakeWindowPassedWithoutEvidence"


def test_F5_more_than_twenty_history_entries_change_nothing():
    world = World(rollback={"bakeWindow": "1m"})
    v1 = serving_v1(world)
    for n in range(30):  # failed candidates, each adding history entries
        world.apply(version=f"bad{n}", sha256=SHA_B, rollback={"bakeWindow": "1m"})
        bad = world.revision(f"bad{n}", SHA_B, rollback={"bakeWindow": "1m"})
        world.step(1)
        world.failures[bad] = "LoadFailed: boom"
        world.step(1)
    assert len(world.status["history"]) == 20
    plan = world.step(1)
    assert plan.service_revision == v1
    assert plan.deployments[v1][0].version == "1"
    world.apply(version="3", sha256=SHA_C, rollback={"bakeWindow": "1m"})
    v3 = world.revision("3", SHA_C, rollback={"bakeWindow": "1m"})
    world.step(1)
    world.ready.add(v3)
    assert world.step(1).service_revision == v3


def test_F7_the_same_manual_rollback_twice_is_two_requests():
    world = World(rollback={"bakeWindow": "1m", "keepPrevious": 2})
    v1 = serving_v1(world)
    for version, sha in (("2", SHA_B), ("3", SHA_C)):
        world.roll_out(version, sha, rollback={"bakeWindow": "1m", "keepPrevious": 2})
        if version == "2":
            world.annotations[contract.ANNOTATION_ROLLBACK_TO] = "1@first"
            assert world.step(1).service_revision == v1
            world.annotations[contract.ANNOTATION_RETRY] = "r1"
            world.step(1)
        world.judged(3)
        world.step(61)
    assert world.status["servingVersion"] == "3"
    world.ready.add(v1)
    world.annotations[contract.ANNOTATION_ROLLBACK_TO] = "1@second"
    plan = world.step(1)
    assert plan.service_revision == v1
    assert "errorRate" not in {k for k, v in world.status["rollback"].items() if v is not None}


def test_F7_automatic_then_manual_rollback_record_is_written_whole():
    world = World()
    baking_v2(world)
    world.step(10, decision=FAIL)
    assert world.status["rollback"]["errorRate"] == 0.3
    world.annotations[contract.ANNOTATION_ROLLBACK_TO] = "1@x"
    world.step(1)  # v1 serves already: ignored, record untouched
    assert world.status["rollback"]["reason"] == "ErrorRateAboveThreshold"


@pytest.mark.parametrize("edit", [{"replicas": 3}, {"suspend": False},
                                  {"rollback": {"errorRateThreshold": 0.5}}])
def test_F8_edits_after_a_rollback_do_not_re_serve(edit):
    world = World()
    v2 = baking_v2(world)
    v1 = world.revision("1", SHA_A)
    world.step(10, decision=FAIL)
    world.apply(version="2", sha256=SHA_B, **edit)
    plan = world.step(1)
    assert plan.service_revision == v1
    assert world.condition("Stalled") == ("True", "RolledBack")
    assert plan.deployments[world.revision("2", SHA_B, **edit)][1] == 0


def test_F9_a_config_only_change_rolls_out_bakes_and_rolls_back():
    world = World()
    v1 = serving_v1(world)
    limits = {"limits": {"memory": "8Mi"}}
    world.apply(resources=limits)
    small = world.revision("1", SHA_A, resources=limits)
    assert small != v1
    plan = world.step(1)
    assert plan.service_revision == v1 and plan.deployments[v1][0].resources == {}
    assert plan.deployments[small][0].resources == limits
    world.ready.add(small)
    world.step(1)
    assert world.record(small)["phase"] == "Baking"
    plan = world.step(10, decision=FAIL)
    assert plan.service_revision == v1
    assert world.record(small)["phase"] == "RolledBack"


def test_F10_a_decision_about_another_revision_is_ignored():
    world = World()
    v2 = baking_v2(world)
    world.apply(version="3", sha256=SHA_C)
    v3 = world.revision("3", SHA_C)
    world.step(1)
    world.ready.add(v3)
    plan = world.step(1, decision=replace(FAIL, revision=v2))
    assert plan.service_revision == v3
    assert world.record(v3)["phase"] == "Baking"


def test_F11_rollback_to_a_target_that_is_not_ready_holds_and_scales_it_up():
    world = World()
    v2 = baking_v2(world)
    v1 = world.revision("1", SHA_A)
    world.ready.discard(v1)
    plan = world.step(10, decision=FAIL)
    assert plan.service_revision == v2
    assert world.condition("Reconciling") == ("True", "RollbackTargetUnavailable")
    assert world.condition("Degraded") == ("True", "RollbackTargetUnavailable")
    assert plan.deployments[v1][1] == 2
    world.ready.add(v1)
    plan = world.step(1)
    assert plan.service_revision == v1
    assert world.record(v2)["phase"] == "RolledBack"


def test_v2_while_v1_bakes_keeps_v1_warm_and_rolls_back_to_it():
    world = World()
    v1 = world.revision("1", SHA_A)
    world.step()
    world.ready.add(v1)
    world.step(1)
    world.apply(version="2", sha256=SHA_B)
    v2 = world.revision("2", SHA_B)
    world.step(15)
    world.ready.add(v2)
    plan = world.step(1)
    assert plan.service_revision == v2 and plan.deployments[v1][1] == 2
    assert v1 not in plan.delete
    plan = world.step(10, decision=FAIL)
    assert plan.service_revision == v1
    assert world.condition("Stalled") == ("True", "RolledBack")


def test_v3_while_v2_breaches_keeps_the_good_target():
    world = World()
    v2 = baking_v2(world)
    v1 = world.revision("1", SHA_A)
    world.step(10, decision=replace(FAIL, rollback=False, consecutive_breaches=1))
    world.status["analysis"] = {"revision": v2, "consecutiveBreaches": 1}
    world.apply(version="3", sha256=SHA_C)
    v3 = world.revision("3", SHA_C)
    world.step(1)
    world.ready.add(v3)
    plan = world.step(1)
    assert plan.service_revision == v3
    assert world.record(v3)["predecessor"] == v1
    assert plan.deployments[v1][1] == 2


def test_S9_suspend_freezes_the_bake_clock():
    world = World()
    v2 = baking_v2(world)
    world.apply(version="2", sha256=SHA_B, suspend=True)
    world.step(10)
    world.step(3600)
    world.apply(version="2", sha256=SHA_B)
    world.step(1)
    assert world.record(v2)["phase"] == "Baking"
    assert world.condition("Reconciling") == ("True", "Baking")


def test_retry_token_unblocks_a_rolled_back_revision():
    world = World()
    v2 = baking_v2(world)
    world.step(10, decision=FAIL)
    world.annotations[contract.ANNOTATION_RETRY] = "again"
    world.step(1)
    plan = world.step(1)
    assert plan.service_revision == v2
    assert world.record(v2)["phase"] == "Baking"


def test_operator_upgrade_keeps_the_legacy_deployment_serving_until_the_new_revision_is_ready():
    """Status written by an operator from before revision records: a serving revision with no
    record. The Service stays on it and its Deployment is kept until the spec's revision is
    ready; then traffic moves and the legacy Deployment is deleted."""
    world, legacy = World(), "0123456789"
    world.status = {"servingRevision": legacy, "servingVersion": "1", "lastGoodVersion": "1",
                    "history": [{"version": "1", "phase": "Promoted"}]}
    world.existing, world.ready = {legacy}, {legacy}
    v1 = world.revision("1", SHA_A)
    plan = world.step(1)
    assert plan.service_revision == legacy and legacy not in plan.delete
    assert ("Normal", "Adopted") in [(t, r) for t, r, _ in plan.events]
    plan = world.step(30)
    assert plan.service_revision == legacy and legacy not in plan.delete
    world.ready.add(v1)
    plan = world.step(1)
    assert plan.service_revision == v1
    plan = world.step(1)
    assert legacy in plan.delete and "legacyRevision" not in world.status


def test_operator_upgrade_adopts_a_legacy_deployment_with_only_some_pods_ready():
    """Seen on the cluster tier under load: the first pass after the upgrade ran before the
    legacy Deployment reported all replicas ready, so it was not adopted and never would be.
    One ready pod still serves; the Service must stay on it."""
    world, legacy = World(), "0123456789"
    world.status = {"servingRevision": legacy, "servingVersion": "1"}
    world.existing, world.ready_pods = {legacy}, {legacy: 1}
    plan = world.step(1)
    assert plan.service_revision == legacy and legacy not in plan.delete
    assert world.status["legacyRevision"] == legacy


def test_operator_upgrade_with_no_legacy_pod_ready_starts_afresh():
    world, legacy = World(), "0123456789"
    world.status = {"servingRevision": legacy, "servingVersion": "1"}
    world.existing, world.ready_pods = {legacy}, {legacy: 0}
    plan = world.step(1)
    assert plan.service_revision == world.revision("1", SHA_A)
    assert "legacyRevision" not in world.status


def test_operator_upgrade_with_the_legacy_deployment_gone_starts_afresh():
    world = World()
    world.status = {"servingRevision": "0123456789", "servingVersion": "1"}
    plan = world.step(1)
    assert plan.service_revision == world.revision("1", SHA_A)
    assert "legacyRevision" not in world.status


def test_last_good_version_follows_a_revert_and_names_the_rollback_target():
    """Seen on the cluster tier (test_rollout_sequences): v1 and v2 promoted, spec reverted
    to v1 (served again without a bake) still said lastGoodVersion 2, and kept saying so while
    a v3 baked with v1 as its rollback target; the CRD calls the field the rollback target."""
    world = World(rollback={"bakeWindow": "1m", "keepPrevious": 1})
    v1 = serving_v1(world)
    world.roll_out("2", SHA_B, rollback={"bakeWindow": "1m", "keepPrevious": 1})
    world.judged(3)
    world.step(61)
    assert world.status["lastGoodVersion"] == "2"
    world.apply(version="1", sha256=SHA_A, rollback={"bakeWindow": "1m", "keepPrevious": 1})
    world.step(1)
    assert world.status["servingRevision"] == v1 and world.record(v1)["phase"] == "Promoted"
    assert (world.status["lastGoodVersion"], world.status["lastGoodRevision"]) == ("1", v1)
    world.roll_out("3", SHA_C, rollback={"bakeWindow": "1m", "keepPrevious": 1})
    v3 = world.record(world.revision("3", SHA_C))
    assert world.status["servingVersion"] == "3" and v3["predecessor"] == v1
    assert world.status["lastGoodVersion"] == "1", "the rollback target, not the newest promotion"
    world.step(1, decision=FAIL)
    world.step(1)
    assert world.status["servingRevision"] == v1 and world.status["lastGoodVersion"] == "1"


def test_first_version_breaching_stays_degraded_between_windows_until_one_passes():
    world = World()
    v1 = world.revision("1", SHA_A)
    world.step()
    world.ready.add(v1)
    world.step(1)
    _judge(world, FAIL)
    assert world.condition("Degraded") == ("True", "NoPreviousVersion")
    for _ in range(3):  # passes without a decision keep saying so
        world.step(1)
        assert world.condition("Degraded") == ("True", "NoPreviousVersion")
    _judge(world, PASS)
    world.step(1)
    assert world.condition("Degraded") is None


def test_history_records_the_numbers_of_the_window_that_decided():
    """`modelops history` shows each version's error rate and quality: the entry of a phase
    change carries the latest judged window about that revision."""
    world = World()
    v2 = baking_v2(world)
    bad = replace(FAIL, quality={"scoredRows": 120, "accuracy": 0.41})
    world.step(10, decision=bad)
    rolled_back = [e for e in world.status["history"] if e["revision"] == v2][-1]
    assert rolled_back["phase"] == "RolledBack"
    assert (rolled_back["errorRate"], rolled_back["requests"]) == (0.3, 200)
    assert rolled_back["quality"] == {"scoredRows": 120, "accuracy": 0.41}
    first = world.status["history"][0]
    assert first["phase"] == "Starting" and "errorRate" not in first and "quality" not in first
