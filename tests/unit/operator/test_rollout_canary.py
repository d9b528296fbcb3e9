"""Canary steps in the planner: a ready candidate answers each step's share before it serves."""

from __future__ import annotations

import pytest

from modelops import contract
from modelops.operator.canary_gate import CanaryStats
from tests.factories import SHA_B
from tests.unit.operator.test_rollout import World, serving_v1
from tests.unit.operator.test_rollout_shadow import stats as shadow_stats

CANARY = {"canary": {"steps": [10, 50], "stepDuration": "30s", "minRequests": 20,
                     "maxErrorRate": 0.05, "hashHeader": "X-User"}}
SHADOW_THEN_CANARY = {**CANARY, "shadow": {"minRows": 100, "maxDuration": "10m"}}


def answers(ok: int, failed: int = 0, fallback: int = 0) -> CanaryStats:
    return CanaryStats(codes={"200": ok, "500": failed, "fallback": fallback})


def canary_v2(world: World, rollout=CANARY) -> tuple[str, str]:
    v1 = serving_v1(world)
    world.apply(version="2", sha256=SHA_B, rollout=rollout)
    world.step(1)
    v2 = world.revision("2", SHA_B)
    world.ready.add(v2)
    world.step(1)
    return v1, v2


def test_a_ready_candidate_answers_the_first_steps_share_through_the_serving_pods():
    world = World(rollout=CANARY)
    v1, v2 = canary_v2(world)
    plan = world.step(1)
    assert plan.service_revision == v1 and world.record(v2)["phase"] == "Canary"
    wiring = plan.shadow
    assert (wiring.source, wiring.candidate, wiring.version) == (v1, v2, "2")
    assert (wiring.canary_percent, wiring.percent, wiring.canary_hash_header) == (10, 0, "X-User")
    assert world.condition("Ready") == ("True", "Canary")
    assert world.record(v2)["canary"] == {"step": 1, "steps": 2, "weight": 10}
    assert [r for _, r, _ in plan.events].count("CanaryStarted") == 0  # posted the pass before


@pytest.mark.parametrize("rollout", [CANARY, SHADOW_THEN_CANARY, {}])
def test_a_candidates_service_exists_from_its_first_pod_until_it_fails(rollout):
    """kube-proxy needs a moment to program a new Service; created with the candidate's pods,
    it is programmed before the first copy or canary request goes to it."""
    world = World(rollout=rollout)
    v1 = serving_v1(world)
    world.apply(version="2", sha256=SHA_B, rollout=rollout)
    plan = world.step(1)
    v2 = world.revision("2", SHA_B)
    assert plan.shadow is None and plan.deployments[v2][1] == 2
    assert plan.candidate_service == ((v2, "2") if rollout else None)
    if not rollout:
        return
    world.ready.add(v2)
    plan = world.step(1)
    assert plan.shadow.candidate == v2 and plan.candidate_service == (v2, "2")
    world.annotations = {contract.ANNOTATION_ABORT: "2"}
    plan = world.step(1)
    assert world.record(v2)["phase"] == "Failed" and plan.service_revision == v1
    assert plan.shadow is None and plan.candidate_service is None


def test_steps_pass_on_held_time_and_requests_then_the_candidate_serves_and_bakes():
    world = World(rollout=CANARY)
    v1, v2 = canary_v2(world)
    world.canary = {v2: answers(100)}
    assert world.step(10).shadow.canary_percent == 10  # enough requests, held 10 s of 30
    plan = world.step(25)
    assert plan.shadow.canary_percent == 50 and world.record(v2)["canaryStep"] == 1
    assert "CanaryStepPassed" in [r for _, r, _ in plan.events]
    world.canary = {v2: answers(10)}  # the new step's count: too few yet
    assert world.step(40).shadow.canary_percent == 50
    world.canary = {v2: answers(30)}
    plan = world.step(1)
    assert plan.service_revision == v2 and world.record(v2)["phase"] == "Baking"
    assert plan.shadow is None and world.record(v2)["predecessor"] == v1
    assert "CanaryPassed" in [r for _, r, _ in plan.events]


@pytest.mark.parametrize("evidence,why", [
    (answers(10, failed=2), "2 of 12"),        # 2 / max(12, 20) = 10 % > 5 %: no need to wait
    (answers(95, fallback=10), "10 of 105"),  # unreachable counts against the candidate
])
def test_failures_above_the_rate_abort_back_to_the_serving_version(evidence, why):
    world = World(rollout=CANARY)
    v1, v2 = canary_v2(world)
    world.canary = {v2: evidence}
    plan = world.step(5)
    assert plan.service_revision == v1 and plan.shadow is None
    assert world.record(v2)["phase"] == "Failed" and world.record(v2)["canaryFailedAt"]
    assert plan.deployments[v2][1] == 0 and plan.deployments[v1][1] == 2
    assert world.condition("Stalled") == ("True", "CanaryErrorRateAboveThreshold")
    assert why in world.record(v2)["message"]
    assert "CanaryAborted" in [r for _, r, _ in plan.events]
    assert world.step(60).service_revision == v1  # and it stays stopped


def test_a_failure_below_the_rate_over_min_requests_waits():
    world = World(rollout=CANARY)
    _, v2 = canary_v2(world)
    world.canary = {v2: answers(5, failed=1)}  # 1 / 20 = 5 %: not above
    assert world.step(5).shadow.canary_percent == 10


def test_promote_and_abort_annotations_decide_by_hand():
    world = World(rollout=CANARY)
    v1, v2 = canary_v2(world)
    world.annotations[contract.ANNOTATION_ABORT] = "2"
    plan = world.step(1)
    assert plan.service_revision == v1 and world.record(v2)["reason"] == "Aborted"
    world = World(rollout=CANARY)
    v1, v2 = canary_v2(world)
    world.annotations[contract.ANNOTATION_PROMOTE] = "2"
    assert world.step(1).service_revision == v2


def test_shadow_first_then_canary_and_a_failed_shadow_never_answers_a_user():
    world = World(rollout=SHADOW_THEN_CANARY)
    v1, v2 = canary_v2(world, SHADOW_THEN_CANARY)
    assert world.record(v2)["phase"] == "Shadowing" and not world.step(1).shadow.canary_percent
    world.shadow = {v2: shadow_stats(150)}
    plan = world.step(10)
    assert world.record(v2)["phase"] == "Canary" and plan.shadow.canary_percent == 10
    assert plan.service_revision == v1

    world = World(rollout=SHADOW_THEN_CANARY)
    v1, v2 = canary_v2(world, SHADOW_THEN_CANARY)
    world.shadow = {v2: shadow_stats(150, disagreements=50)}
    plan = world.step(10)
    assert world.record(v2)["phase"] == "Failed" and plan.shadow is None


def test_a_newer_version_during_the_canary_retires_it_and_its_share_goes_back():
    world = World(rollout=CANARY)
    v1, v2 = canary_v2(world)
    world.apply(version="3", sha256=SHA_B, rollout=CANARY)
    plan = world.step(1)
    assert v2 not in {r["revision"] for r in world.status["revisions"]} and v2 in plan.delete
    assert plan.shadow is None and plan.service_revision == v1
