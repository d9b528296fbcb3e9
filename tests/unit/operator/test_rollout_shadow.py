"""The shadow gate in the planner: a ready candidate answers no one until it passes."""

from __future__ import annotations

from modelops import contract
from modelops.operator.shadow_gate import ShadowStats
from tests.factories import SHA_A, SHA_B
from tests.unit.operator.test_rollout import FAIL, World, serving_v1

SHADOW = {"shadow": {"minRows": 100, "maxDisagreement": 0.05, "maxErrorRate": 0.02,
                     "percent": 50, "maxDuration": "10m"}}


def stats(rows, disagreements=0, mirrored=None, error=0, shed=0):
    copies = {"mirrored": rows if mirrored is None else mirrored, "error": error, "shed": shed}
    return ShadowStats(rows=rows, disagreements=disagreements, outcomes=copies)


def shadowing_v2(world: World) -> tuple[str, str]:
    v1 = serving_v1(world)
    world.apply(version="2", sha256=SHA_B, rollout=SHADOW)
    world.step(1)
    v2 = world.revision("2", SHA_B)
    world.ready.add(v2)
    world.step(1)
    return v1, v2


def test_a_ready_candidate_is_shadowed_not_served():
    world = World(rollout=SHADOW)
    v1, v2 = shadowing_v2(world)
    plan = world.step(1)
    assert plan.service_revision == v1 and world.record(v2)["phase"] == "Shadowing"
    assert plan.shadow.source == v1 and plan.shadow.candidate == v2
    assert (plan.shadow.version, plan.shadow.percent) == ("2", 50)
    assert world.condition("Ready") == ("True", "Shadowing")
    assert world.condition("Reconciling") == ("True", "Shadowing")
    assert plan.deployments[v2][1] == 2


def test_the_shadow_started_event_is_posted_once():
    world = World(rollout=SHADOW)
    v1 = serving_v1(world)
    world.apply(version="2", sha256=SHA_B, rollout=SHADOW)
    world.step(1)
    world.ready.add(world.revision("2", SHA_B))
    reasons = [r for _ in range(3) for _, r, _ in world.step(1).events]
    assert reasons.count("ShadowStarted") == 1
    assert world.step(1).service_revision == v1


def test_a_candidate_that_agrees_takes_traffic_and_bakes():
    world = World(rollout=SHADOW)
    v1, v2 = shadowing_v2(world)
    world.shadow = {v2: stats(99)}
    assert world.step(10).service_revision == v1
    world.shadow = {v2: stats(150, disagreements=3)}
    plan = world.step(10)
    assert plan.service_revision == v2 and world.record(v2)["phase"] == "Baking"
    assert world.record(v2)["predecessor"] == v1 and plan.shadow is None
    assert ("Normal", "ShadowPassed") in [(t, r) for t, r, _ in plan.events]
    assert world.record(v2)["shadow"]["rows"] == 150


def test_a_candidate_that_disagrees_is_stopped_without_serving():
    world = World(rollout=SHADOW)
    v1, v2 = shadowing_v2(world)
    world.shadow = {v2: stats(200, disagreements=60)}
    plan = world.step(10)
    rec = world.record(v2)
    assert plan.service_revision == v1 and rec["phase"] == "Failed"
    assert rec["reason"] == "ShadowDisagreementAboveThreshold" and not rec["servedAt"]
    assert "30.0%" in rec["message"] and plan.shadow is None
    assert plan.deployments[v2][1] == 0, "a candidate stopped in shadow is scaled to zero"
    assert world.condition("Stalled")[0] == "True"
    for _ in range(5):
        assert world.step(30).service_revision == v1
    assert world.status["servingVersion"] == "1"


def test_a_candidate_that_errors_fails_before_it_compares_enough_rows():
    world = World(rollout=SHADOW)
    v1, v2 = shadowing_v2(world)
    world.shadow = {v2: stats(10, mirrored=10, error=100)}
    world.step(10)
    assert world.record(v2)["reason"] == "ShadowErrorRateAboveThreshold"
    assert world.status["servingRevision"] == v1


def test_shed_copies_are_not_candidate_errors():
    world = World(rollout=SHADOW)
    _, v2 = shadowing_v2(world)
    world.shadow = {v2: stats(150, shed=10_000)}
    assert world.step(10).service_revision == v2


def test_retry_shadows_again_from_zero():
    world = World(rollout=SHADOW)
    v1, v2 = shadowing_v2(world)
    world.shadow = {v2: stats(200, disagreements=60)}
    world.step(10)
    world.shadow = {}
    world.annotations = {contract.ANNOTATION_RETRY: "again"}
    world.step(1)
    plan = world.step(1)
    rec = world.record(v2)
    assert rec["phase"] == "Shadowing" and "shadow" not in rec
    assert plan.deployments[v2][1] == 2 and plan.service_revision == v1


def test_no_evidence_past_max_duration_holds_and_says_how_to_promote():
    world = World(rollout=SHADOW)
    v1, v2 = shadowing_v2(world)
    world.shadow = {v2: stats(5)}
    world.step(601)
    assert world.condition("Ready") == ("True", "InsufficientShadowTraffic")
    assert world.status["servingRevision"] == v1
    world.annotations = {contract.ANNOTATION_PROMOTE: "2"}
    assert world.step(1).service_revision == v2


def test_abort_fails_the_candidate_in_shadow():
    world = World(rollout=SHADOW)
    v1, v2 = shadowing_v2(world)
    world.annotations = {contract.ANNOTATION_ABORT: "2"}
    plan = world.step(1)
    assert world.record(v2)["reason"] == "Aborted" and plan.service_revision == v1


def test_a_newer_version_retires_the_one_in_shadow():
    world = World(rollout=SHADOW)
    v1, v2 = shadowing_v2(world)
    world.apply(version="3", sha256=SHA_A, rollout=SHADOW)
    plan = world.step(1)
    assert v2 not in plan.deployments and plan.service_revision == v1


def test_reverting_to_a_version_that_served_skips_the_shadow():
    world = World()
    v1 = serving_v1(world)
    v2 = world.roll_out("2", SHA_B)
    world.judged(3)
    world.step(301)
    world.apply(version="1", sha256=SHA_A, rollout=SHADOW)
    plan = world.step(1)
    assert plan.service_revision == v1 and plan.shadow is None
    assert v2 in plan.deployments


def test_without_a_shadow_policy_a_ready_revision_serves_at_once():
    world = World()
    serving_v1(world)
    v2 = world.roll_out("2", SHA_B)
    assert world.status["servingRevision"] == v2


def test_the_first_version_is_never_shadowed():
    world = World(rollout=SHADOW)
    v1 = serving_v1(world)
    assert world.status["servingRevision"] == v1


def test_shadow_wiring_follows_a_rollback_of_the_serving_version():
    """v2 bakes, v3 shadows behind it, v2 breaches: v1 serves again and v3 keeps shadowing,
    now copying from v1's pods."""
    world = World(rollout=SHADOW)
    v1 = serving_v1(world)
    v2 = world.roll_out("2", SHA_B)
    world.apply(version="3", sha256=SHA_A, method="predict_proba", rollout=SHADOW)
    world.step(1)
    v3 = world.revision("3", SHA_A, method="predict_proba")
    world.ready.add(v3)
    plan = world.step(1)
    assert plan.shadow.source == v2
    from tests.unit.operator.test_rollout import FAIL
    world.step(10, decision=FAIL)
    plan = world.step(1)
    assert plan.service_revision == v1 and plan.shadow.source == v1 and plan.shadow.candidate == v3


def test_a_breaching_serving_version_shows_its_own_reason_while_a_candidate_is_in_shadow():
    world = World(rollout=SHADOW)
    v1, v2 = shadowing_v2(world)
    plan = world.step(10, decision=FAIL)
    assert plan.service_revision == v1 and world.record(v2)["phase"] == "Shadowing"
    assert world.condition("Degraded") == ("True", "ErrorRateAboveThreshold")
    assert world.condition("Reconciling") == ("True", "Shadowing")
    assert world.condition("Ready") == ("True", "ServingDegraded")
    message = next(c["message"] for c in world.status["conditions"] if c["type"] == "Degraded")
    assert message.startswith("version 1 is serving and breaching (error rate 30% > 5%); "
                              "version 2 is in shadow")
