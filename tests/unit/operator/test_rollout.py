"""The rollout/rollback state machine, driven pass by pass as the handlers drive it."""

from __future__ import annotations

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

    def apply(self, **spec):
        self.spec = model_spec(**spec)
        self.generation += 1

    def step(self, seconds: float = 0, decision: Decision | None = None):
        self.now += seconds
        spec = parse_model(self.spec)
        observed = {rev: RevisionState(replicas=2, ready=2 if rev in self.ready else 0,
                                       failure=self.failures.get(rev, ""))
                    for rev in self.existing}
        plan = plan_model(PlanInput(name="iris", spec=spec, generation=self.generation,
                                    status=self.status, observed=observed, now=self.now,
                                    annotations=self.annotations, decision=decision))
        self.status = plan.status
        self.existing = (self.existing | set(plan.deployments)) - set(plan.delete)
        return plan

    def condition(self, type_):
        c = get_condition(self.status["conditions"], type_)
        return (c["status"], c["reason"]) if c else None

    def revision(self, version, sha):
        return parse_model(model_spec(version=version, sha256=sha)).revision


def serving_v1(world: World) -> str:
    """Bring version 1 up and past its bake window."""
    v1 = world.revision("1", SHA_A)
    world.step()
    world.ready.add(v1)
    world.step()
    world.step(301)
    assert world.status["lastGoodVersion"] == "1"
    return v1


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
    assert world.status["history"][-1]["outcome"] == "Promoted"
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
    plan = world.step(301)
    assert world.status["lastGoodVersion"] == "2"
    assert plan.deployments[v1][1] == 0, "scaled down after promotion"


def test_breach_during_bake_rolls_back_and_is_not_retried_on_reapply():
    world = World()
    v1 = serving_v1(world)
    world.apply(version="2", sha256=SHA_B)
    world.step(1)
    world.ready.add(world.revision("2", SHA_B))
    world.step(1)
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
    world.apply(version="2", sha256=SHA_B)
    world.step(1)
    v2 = world.revision("2", SHA_B)
    world.ready.add(v2)
    world.step(1)
    world.step(10, decision=FAIL)
    world.annotations[contract.ANNOTATION_RETRY] = "try-again"
    plan = world.step(1)
    assert plan.service_revision == v2, "v2 pods are still ready, so the retry serves at once"
    assert world.condition("Ready") == ("True", "Baking")


def test_dry_run_reports_but_does_not_roll_back():
    world = World(rollback={"dryRun": True, "bakeWindow": "5m"})
    serving_v1(world)
    world.apply(version="2", sha256=SHA_B, rollback={"dryRun": True, "bakeWindow": "5m"})
    world.step(1)
    world.ready.add(world.revision("2", SHA_B))
    world.step(1)
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
    assert [h["outcome"] for h in world.status["history"]] == ["Promoted", "Superseded"]


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
    assert world.status["history"][-1]["outcome"] == "Failed"
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


def test_breach_after_promotion_only_degrades():
    world = World()
    v1 = serving_v1(world)
    plan = world.step(10, decision=FAIL)
    assert plan.service_revision == v1
    assert world.condition("Degraded") == ("True", "ErrorRateAboveThreshold")
    assert world.condition("Ready")[0] == "True"
    world.step(10, decision=PASS)
    assert world.condition("Degraded") is None


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
        world.apply(version=str(n), sha256=sha, rollback={"keepPrevious": keep, "bakeWindow": "1m"})
        world.step(1)
        world.ready.add(world.revision(str(n), sha))
        world.step(1)
        world.step(61)
    assert world.status["lastGoodVersion"] == "4"
    assert len(world.existing) == 1 + keep


def test_manual_rollback_annotation_serves_an_earlier_version_once():
    world = World(rollback={"bakeWindow": "1m", "keepPrevious": 1})
    v1 = serving_v1(world)
    world.apply(version="2", sha256=SHA_B, rollback={"bakeWindow": "1m", "keepPrevious": 1})
    world.step(1)
    world.ready.add(world.revision("2", SHA_B))
    world.step(1)
    world.step(61)
    assert world.status["lastGoodVersion"] == "2"
    world.ready.discard(v1)  # v1 was scaled to zero after v2's promotion
    world.annotations[contract.ANNOTATION_ROLLBACK_TO] = "1"
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
    world.annotations[contract.ANNOTATION_ROLLBACK_TO] = "7"
    plan = world.step(1)
    assert plan.service_revision == v1
    assert [e[1] for e in plan.events] == ["RollbackRequestIgnored"]
    assert world.step(1).events == []
