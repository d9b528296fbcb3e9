"""spec.rollout.shadow parsing, the gate's verdicts and the counters' increase."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from modelops import contract
from modelops.operator.shadow_gate import (
    FAIL, PASS, WAIT, ShadowPolicy, ShadowStats, increase, judge, pod_counters)

POLICY = ShadowPolicy(min_rows=100, max_disagreement=0.05, max_error_rate=0.02)


def test_absent_means_no_shadow():
    assert ShadowPolicy.from_spec(None) is None


def test_defaults_and_durations():
    policy = ShadowPolicy.from_spec({"maxDuration": "5m", "percent": 25})
    assert (policy.max_duration_seconds, policy.percent, policy.min_rows) == (300, 25, 200)


@pytest.mark.parametrize("raw, field", [
    ({"percent": 0}, "percent"), ({"percent": 101}, "percent"), ({"minRows": 1.5}, "minRows"),
    ({"maxDisagreement": 2}, "maxDisagreement"), ({"maxErrorRate": True}, "maxErrorRate"),
    ({"maxDuration": "soon"}, "soon"), ({"maxDuration": "100ms"}, "maxDuration"),
    ({"tolerance": -1}, "tolerance"), ({"mirror": 1}, "mirror"), ("yes", "shadow"),
])
def test_bad_values_name_the_field(raw, field):
    with pytest.raises(ValueError, match=field):
        ShadowPolicy.from_spec(raw)


def stats(rows, disagreements=0, **copies):
    return ShadowStats(rows=rows, disagreements=disagreements,
                       outcomes={"mirrored": rows, **copies})


@pytest.mark.parametrize("evidence, verdict, reason", [
    (None, WAIT, "ShadowStarting"),
    (stats(0), WAIT, "Shadowing"),
    (stats(99, 50), WAIT, "Shadowing"),
    (stats(100, 5), PASS, "ShadowPassed"),
    (stats(100, 6), FAIL, "ShadowDisagreementAboveThreshold"),
    (stats(100, 0, error=3), FAIL, "ShadowErrorRateAboveThreshold"),
    (stats(100, 0, error=2), PASS, "ShadowPassed"),
    (stats(0, 0, error=100), FAIL, "ShadowErrorRateAboveThreshold"),
    (stats(0, 0, timeout=60, unreachable=60), FAIL, "ShadowErrorRateAboveThreshold"),
    (stats(10, 0, error=50), WAIT, "Shadowing"),  # too few copies to judge the rate
    (stats(100, 0, shed=100_000), PASS, "ShadowPassed"),
])
def test_judge(evidence, verdict, reason):
    got = judge(POLICY, evidence)
    assert got[:2] == (verdict, reason), got[2]


def test_the_message_gives_the_figures():
    _, _, message = judge(POLICY, stats(200, 60, shed=7))
    assert "30.0% of 200 rows" in message and "7 copies shed" in message


def sample(name, value, candidate="2", outcome=None, version="1"):
    labels = {"model": "iris", "version": version, "candidate": candidate}
    if outcome:
        labels["outcome"] = outcome
    return SimpleNamespace(name=name, value=value, labels=labels)


def test_pod_counters_keep_only_the_candidate():
    samples = [sample(contract.METRIC_SHADOW_ROWS, 10), sample(contract.METRIC_SHADOW_ROWS, 99,
                                                                candidate="3"),
               sample(contract.METRIC_SHADOW_DISAGREEMENTS, 2),
               sample(contract.METRIC_SHADOW_REQUESTS, 4, outcome="mirrored"),
               sample(contract.METRIC_SHADOW_REQUESTS, 1, outcome="shed"),
               sample(contract.METRIC_SHADOW_ROWS, 50, version="0")]
    assert pod_counters(samples, model="iris", version="1", candidate="2") == (
        10, 2, {"mirrored": 4, "shed": 1})


def test_increase_counts_new_and_restarted_pods_from_zero():
    base = {"a": (100.0, 10.0, {"mirrored": 50.0}), "b": (40.0, 0.0, {"mirrored": 40.0})}
    now = {"a": (150.0, 12.0, {"mirrored": 70.0, "error": 1.0}),
           "b": (5.0, 1.0, {"mirrored": 5.0}),  # restarted
           "c": (7.0, 0.0, {"mirrored": 7.0})}  # new
    got = increase(base, now, unscraped=1)
    assert (got.rows, got.disagreements) == (62.0, 3.0)
    assert got.outcomes == {"mirrored": 32.0, "error": 1.0} and got.unscraped == 1
