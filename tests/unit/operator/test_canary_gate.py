"""The canary gate: the policy as the user writes it, the evidence read from the serving pods'
own forwarded-request counter, and the verdict on one step."""

from __future__ import annotations

import pytest
from prometheus_client import CollectorRegistry, generate_latest

from modelops.operator.canary_gate import (FAIL, PASS, WAIT, CanaryPolicy, CanaryStats, increase,
                                           judge, pod_counters)
from modelops.operator.metrics_source import parse_samples
from modelops.serving.pinned import PinnedVersions

POLICY = CanaryPolicy(steps=(10.0, 50.0), step_duration_seconds=30.0, min_requests=20,
                      max_error_rate=0.05)


@pytest.mark.parametrize("raw,expected", [
    ({}, CanaryPolicy()),
    ({"steps": [5, 25, 75], "stepDuration": "2m", "minRequests": 10, "maxErrorRate": 0.1,
      "hashHeader": "X-User"},
     CanaryPolicy((5.0, 25.0, 75.0), 120.0, 10, 0.1, "X-User")),
    ({"steps": [0.5]}, CanaryPolicy(steps=(0.5,))),
])
def test_policy_from_the_spec(raw, expected):
    assert CanaryPolicy.from_spec(raw) == expected
    assert CanaryPolicy.from_spec(None) is None


@pytest.mark.parametrize("raw,message", [
    ([], "spec.rollout.canary must be an object"),
    ({"weights": [10]}, "spec.rollout.canary.weights is not a known field"),
    ({"steps": []}, "spec.rollout.canary.steps must be a list of 1 to 10"),
    ({"steps": [10, 100]}, "below 100"),
    ({"steps": [0]}, "above 0"),
    ({"steps": [50, 10]}, "spec.rollout.canary.steps must increase"),
    ({"steps": [10, 10]}, "must increase"),
    ({"steps": [True]}, "numbers"),
    ({"stepDuration": "0.5s"}, "stepDuration must be at least 1s"),
    ({"stepDuration": "soon"}, "duration"),
    ({"minRequests": 0}, "spec.rollout.canary.minRequests must be between 1"),
    ({"minRequests": 2.5}, "minRequests must be an integer"),
    ({"maxErrorRate": 2}, "maxErrorRate must be between 0 and 1"),
    ({"hashHeader": "X User"}, "hashHeader must be an HTTP header name"),
])
def test_bad_policies_name_the_field(raw, message):
    with pytest.raises(ValueError, match=message):
        CanaryPolicy.from_spec(raw)


def stats(**codes) -> CanaryStats:
    return CanaryStats(codes={k.removeprefix("c"): v for k, v in codes.items()})


@pytest.mark.parametrize("evidence,held,verdict,reason", [
    (None, 100, WAIT, "CanaryStarting"),
    (stats(c200=100), 29, WAIT, "Canary"),                   # not held long enough
    (stats(c200=19), 100, WAIT, "Canary"),                   # too few answers
    (stats(c200=20), 30, PASS, "CanaryStepPassed"),
    (stats(c200=19, c500=1), 30, PASS, "CanaryStepPassed"),  # 5 % is not above 5 %
    (stats(c200=9, c500=2), 1, FAIL, "CanaryErrorRateAboveThreshold"),  # 2/20 already
    (stats(c200=1, fallback=2), 1, FAIL, "CanaryErrorRateAboveThreshold"),
    (stats(c200=190, c503=11), 100, FAIL, "CanaryErrorRateAboveThreshold"),
    (stats(c200=100, c400=50), 100, PASS, "CanaryStepPassed"),  # the users' bad requests
    (CanaryStats(codes={"200": 100}, settling=True), 100, WAIT, "Canary"),  # wiring settling
    (CanaryStats(codes={"200": 9, "500": 2}, settling=True), 1, FAIL,
     "CanaryErrorRateAboveThreshold"),  # but its own errors already count
])
def test_judging_one_step(evidence, held, verdict, reason):
    got = judge(POLICY, evidence, held=held, weight=10)
    assert got[:2] == (verdict, reason), got
    assert got[2].startswith("at 10%")


class ServingPod:
    """A serving pod's canary counter: the serving image's own, as /metrics shows it."""

    def __init__(self, version="1"):
        self.registry = CollectorRegistry()
        self.forwarder = PinnedVersions(None, name="fraud", version=version, shadow=None,
                                        max_body_bytes=1024, registry=self.registry)

    def answered(self, code: str, n: int, *, target="2", route="canary"):
        for _ in range(n):
            self.forwarder._requests.labels("fraud", self.forwarder.version, target, route,
                                            code).inc()

    def counters(self, candidate="2"):
        samples = parse_samples(generate_latest(self.registry).decode())
        return pod_counters(samples, model="fraud", version="1", candidate=candidate)


def test_counters_are_the_canary_answers_for_this_candidate_only():
    pod = ServingPod()
    pod.answered("200", 7)
    pod.answered("500", 2)
    pod.answered("fallback", 1)
    pod.answered("200", 5, route="pinned")   # a user's pinned request is not the canary
    pod.answered("200", 3, target="3")       # another candidate
    assert pod.counters() == {"200": 7, "500": 2, "fallback": 1}
    assert ServingPod(version="9").counters() == {}


def test_the_increase_is_summed_over_pods_and_a_restarted_pod_counts_from_zero():
    a, b = ServingPod(), ServingPod()
    a.answered("200", 10)
    b.answered("200", 4)
    baseline = {"a": a.counters(), "b": b.counters()}
    a.answered("200", 5)
    a.answered("500", 1)
    restarted = ServingPod()
    restarted.answered("200", 2)  # below b's baseline: counted from zero
    got = increase(baseline, {"a": a.counters(), "b": restarted.counters(),
                              "new": ServingPod().counters()}, unscraped=1)
    assert got.codes == {"200": 7, "500": 1} and got.unscraped == 1
    assert (got.requests, got.failed, got.error_rate) == (8, 1, 0.125)
    assert got.as_status() == {"requests": 8, "failed": 1, "errorRate": 0.125,
                               "answers": {"200": 7, "500": 1}}


def test_answers_made_in_the_candidates_place_count_only_after_the_settle():
    pod = ServingPod()
    baseline = {"a": pod.counters()}
    pod.answered("500", 2)        # its own errors, in the first seconds: they count
    pod.answered("fallback", 3)   # its Service not reachable yet: they do not
    settled = {"a": pod.counters()}
    pod.answered("fallback", 1)
    pod.answered("200", 4)
    got = increase(baseline, {"a": pod.counters()}, settled=settled)
    assert got.codes == {"500": 2, "fallback": 1, "200": 4}
    assert increase(baseline, {"a": pod.counters()}).codes["fallback"] == 4  # no settle given
