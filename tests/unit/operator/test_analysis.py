"""Table tests for the rollback decision rules, the window maths and the policy parsing."""

import math

import pytest

from modelops.operator.analysis import (
    Decision,
    PodCounters,
    RollbackPolicy,
    Snapshot,
    WindowStats,
    decide,
    format_duration,
    parse_duration,
    window_stats,
)

POLICY = RollbackPolicy()  # threshold 5 %, 3 breaches in a row, 50 requests minimum


def snap(time, unscraped=(), **pods):
    """A snapshot from pod=(requests, errors) keyword arguments."""
    counters = {name: PodCounters(*values) for name, values in pods.items()}
    return Snapshot(time=time, pods=counters, unscraped={pod: "HTTP 500" for pod in unscraped})


# --- parse_duration / format_duration ---------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("15s", 15), ("2m", 120), ("1h30m", 5400), ("500ms", 0.5), ("1.5s", 1.5), ("1m0.5s", 60.5),
     ("0s", 0), ("2h", 7200), ("1m30s250ms", 90.25)],
)
def test_parse_duration(text, seconds):
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize(
    "text", ["", "15", "2 m", "-1s", "1d", "m", "1.s", "s15", "1h 30m", None, 15])
def test_parse_duration_refuses(text):
    with pytest.raises(ValueError, match="not a duration"):
        parse_duration(text)


@pytest.mark.parametrize(("seconds", "text"), [(120, "2m"), (90, "1m30s"), (5400, "1h30m"),
                                               (0.5, "500ms"), (15, "15s"), (3600, "1h")])
def test_format_duration(seconds, text):
    assert format_duration(seconds) == text


# --- RollbackPolicy.from_spec -----------------------------------------------------------------


def test_from_spec_empty_and_none_give_defaults():
    assert RollbackPolicy.from_spec({}) == RollbackPolicy()
    assert RollbackPolicy.from_spec(None) == RollbackPolicy()


def test_from_spec_reads_every_field():
    policy = RollbackPolicy.from_spec({
        "enabled": False, "dryRun": True, "errorRateThreshold": 0.1, "window": "1m",
        "interval": "5s", "consecutiveBreaches": 2, "minRequests": 10, "bakeWindow": "1h30m",
        "minAccuracy": 0.9, "maxRmse": 2.5, "keepPrevious": 2, "progressDeadlineSeconds": 60,
    })
    assert policy == RollbackPolicy(
        enabled=False, dry_run=True, error_rate_threshold=0.1, window_seconds=60,
        interval_seconds=5, consecutive_breaches=2, min_requests=10, bake_window_seconds=5400,
        min_accuracy=0.9, max_rmse=2.5, keep_previous=2, progress_deadline_seconds=60,
    )


def test_from_spec_allows_null_quality_limits_and_zero_bake():
    policy = RollbackPolicy.from_spec({"minAccuracy": None, "maxRmse": None, "bakeWindow": "0s"})
    assert (policy.min_accuracy, policy.max_rmse, policy.bake_window_seconds) == (None, None, 0)


@pytest.mark.parametrize(
    ("spec", "field"),
    [
        ({"enabled": "yes"}, "enabled"),
        ({"dryRun": 1}, "dryRun"),
        ({"errorRateThreshold": 0}, "errorRateThreshold"),
        ({"errorRateThreshold": 1.01}, "errorRateThreshold"),
        ({"errorRateThreshold": "0.05"}, "errorRateThreshold"),
        ({"errorRateThreshold": float("nan")}, "errorRateThreshold"),
        ({"errorRateThreshold": True}, "errorRateThreshold"),
        ({"window": "2"}, "window"),
        ({"window": "0s"}, "window"),
        ({"window": 120}, "window"),
        ({"interval": "0ms"}, "interval"),
        ({"bakeWindow": "30 minutes"}, "bakeWindow"),
        ({"consecutiveBreaches": 0}, "consecutiveBreaches"),
        ({"consecutiveBreaches": 101}, "consecutiveBreaches"),
        ({"consecutiveBreaches": 2.5}, "consecutiveBreaches"),
        ({"minRequests": 0}, "minRequests"),
        ({"minAccuracy": 1.5}, "minAccuracy"),
        ({"maxRmse": -0.1}, "maxRmse"),
        ({"maxRmse": float("inf")}, "maxRmse"),
        ({"keepPrevious": 11}, "keepPrevious"),
        ({"progressDeadlineSeconds": 5}, "progressDeadlineSeconds"),
        ({"errorRate": 0.1}, "errorRate"),  # a typo is refused, not silently ignored
    ],
)
def test_from_spec_names_the_bad_field(spec, field):
    with pytest.raises(ValueError, match=rf"spec\.rollback\.{field}\b"):
        RollbackPolicy.from_spec(spec)


def test_from_spec_refuses_interval_longer_than_window():
    with pytest.raises(ValueError, match=r"interval \(3m\).*window \(2m\)"):
        RollbackPolicy.from_spec({"interval": "3m", "window": "2m"})


def test_from_spec_refuses_a_non_object():
    with pytest.raises(ValueError, match=r"spec\.rollback must be an object"):
        RollbackPolicy.from_spec(["window", "2m"])


# --- window_stats -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("snapshots", "expected"),
    [
        # steady traffic on two pods
        ([snap(0, a=(100, 1), b=(50, 0)), snap(60, a=(200, 3), b=(150, 2))], (200, 4)),
        # no traffic at all
        ([snap(0, a=(10, 0)), snap(60, a=(10, 0))], (0, 0)),
        # pod a restarted: 500 -> 20 counts the 20 from zero
        ([snap(0, a=(400, 4)), snap(30, a=(500, 5)), snap(60, a=(20, 2))], (120, 3)),
        # only the error counter went down (restart between scrapes with more errors than before)
        ([snap(0, a=(100, 10)), snap(60, a=(150, 3))], (150, 3)),
        # pod b is new (never seen before): its counts start from zero
        ([snap(0, a=(100, 0)), snap(60, a=(150, 0), b=(30, 3))], (80, 3)),
        # pod b disappeared (scaled down / deleted): only what was counted while it was there
        ([snap(0, a=(100, 0), b=(40, 1)), snap(30, a=(120, 0), b=(60, 2)), snap(60, a=(150, 1))],
         (70, 2)),
        # pod b missing from one scrape comes back with a higher counter: no double count
        ([snap(0, a=(0, 0), b=(100, 10)), snap(30, a=(10, 0)), snap(60, a=(20, 0), b=(130, 11))],
         (50, 1)),
        # pod b unreadable at the window start: its first reading is the baseline, not zero
        ([snap(0, a=(0, 0), unscraped=["b"]), snap(30, a=(5, 0), b=(900, 90)),
          snap(60, a=(10, 0), b=(910, 95))], (20, 5)),
    ],
    ids=["steady", "zero-traffic", "reset", "error-reset", "pod-appears", "pod-disappears",
         "pod-gap", "pod-unscraped"],
)
def test_window_stats(snapshots, expected):
    stats = window_stats(snapshots, window_seconds=120, now=60)
    assert (stats.requests, stats.errors) == expected


def test_window_stats_ignores_snapshots_outside_the_window_except_as_baseline():
    history = [snap(0, a=(0, 0), b=(0, 0)), snap(100, a=(1000, 100), b=(60, 0)),
               snap(130, a=(1100, 100)), snap(160, a=(1200, 101), b=(80, 1))]
    stats = window_stats(history, window_seconds=50, now=160)
    # a: 1100 -> 1200; b: absent at 130, so it continues from its last reading (60) at 100
    assert (stats.requests, stats.errors) == (120, 2)


def test_window_stats_order_does_not_matter():
    ordered = [snap(0, a=(0, 0)), snap(30, a=(50, 5)), snap(60, a=(80, 6))]
    assert window_stats(ordered[::-1], window_seconds=120, now=60) == WindowStats(80, 6)


@pytest.mark.parametrize(
    "snapshots",
    [[], [snap(50, a=(10, 0))], [snap(0, a=(0, 0)), snap(61, a=(100, 0))],
     [snap(-100, a=(0, 0)), snap(50, a=(10, 0))]],
    ids=["none", "one", "one-in-window-one-in-future", "one-before-window"],
)
def test_window_stats_needs_two_snapshots_in_the_window(snapshots):
    assert window_stats(snapshots, window_seconds=60, now=60) is None


def test_window_stats_carries_nan():
    stats = window_stats([snap(0, a=(0, 0)), snap(60, a=(math.nan, 0))], window_seconds=120, now=60)
    assert math.isnan(stats.requests)


def test_error_rate():
    assert WindowStats(200, 10).error_rate == 0.05
    assert WindowStats(0, 0).error_rate is None


# --- decide: the error-rate rule --------------------------------------------------------------


def stats_at(rate, requests=10_000):
    return WindowStats(requests=requests, errors=rate * requests)


@pytest.mark.parametrize(
    ("stats", "result", "reason", "breaches"),
    [
        (stats_at(0.05 * 1.001), "Failed", "ErrorRateAboveThreshold", 1),  # +0.1 %
        (stats_at(0.05 * 0.999), "Passed", "ErrorRateWithinThreshold", 0),  # -0.1 %
        (WindowStats(1000, 50), "Passed", "ErrorRateWithinThreshold", 0),  # exactly at: no breach
        (WindowStats(1000, 51), "Failed", "ErrorRateAboveThreshold", 1),
        (WindowStats(1000, 0), "Passed", "ErrorRateWithinThreshold", 0),
        (WindowStats(50, 50), "Failed", "ErrorRateAboveThreshold", 1),  # exactly min_requests
        (WindowStats(49, 49), "Inconclusive", "TooFewRequests", 0),  # one short: never a breach
        (WindowStats(0, 0), "Inconclusive", "TooFewRequests", 0),  # zero traffic
        (None, "Inconclusive", "MetricsUnavailable", 0),  # fewer than two scrapes
        (WindowStats(math.nan, 0), "Inconclusive", "MetricsUnavailable", 0),
        (WindowStats(1000, math.nan), "Inconclusive", "MetricsUnavailable", 0),
    ],
)
def test_decide_table(stats, result, reason, breaches):
    decision = decide(POLICY, stats, previous_breaches=0)
    assert (decision.result, decision.reason, decision.consecutive_breaches) == (
        result, reason, breaches)
    assert decision.rollback is False


def test_decide_reports_the_numbers():
    decision = decide(POLICY, WindowStats(1834, 132), previous_breaches=0)
    assert decision.error_rate == pytest.approx(132 / 1834)
    assert decision.requests == 1834
    assert decision.message == (
        "Error rate 7.20% over 2m (1834 requests, 132 errors) > 5.00%; breach 1 of 3")


def test_decide_nan_never_leaks_into_the_decision():
    decision = decide(POLICY, WindowStats(1000, math.nan), previous_breaches=1)
    assert decision.error_rate is None and decision.requests == 1000


@pytest.mark.parametrize(
    ("history", "expected_breaches", "expected_rollback"),
    [
        (["bad", "bad", "bad"], [1, 2, 3], [False, False, True]),
        (["bad", "good", "bad", "bad"], [1, 0, 1, 2], [False, False, False, False]),
        # inconclusive evaluations hold the count: neither evidence of a breach nor of health
        (["bad", "quiet", "bad", "down", "bad"], [1, 1, 2, 2, 3], [False] * 4 + [True]),
        (["quiet"] * 10, [0] * 10, [False] * 10),
        (["down"] * 10, [0] * 10, [False] * 10),
        (["bad", "bad", "bad", "bad"], [1, 2, 3, 4], [False, False, True, True]),
    ],
)
def test_consecutive_counting(history, expected_breaches, expected_rollback):
    windows = {"bad": (WindowStats(1000, 100), None), "good": (WindowStats(1000, 1), None),
               "quiet": (WindowStats(10, 10), None), "down": (None, "connection refused")}
    breaches, counts, rollbacks = 0, [], []
    for kind in history:
        stats, unavailable = windows[kind]
        decision = decide(POLICY, stats, previous_breaches=breaches, unavailable_reason=unavailable)
        breaches = decision.consecutive_breaches
        counts.append(breaches)
        rollbacks.append(decision.rollback)
    assert (counts, rollbacks) == (expected_breaches, expected_rollback)


def test_scrape_error_is_inconclusive_even_with_bad_numbers():
    decision = decide(POLICY, WindowStats(1000, 900), previous_breaches=2,
                      unavailable_reason="pod-a: HTTP 500 from http://127.0.0.1:1/metrics")
    assert decision == Decision(
        "Inconclusive", 0.9, 1000, 2, False, "MetricsUnavailable",
        "Metrics unavailable: pod-a: HTTP 500 from http://127.0.0.1:1/metrics; "
        "breach count held at 2")


def test_one_breach_policy_rolls_back_at_once():
    policy = RollbackPolicy(consecutive_breaches=1)
    assert decide(policy, WindowStats(100, 6), previous_breaches=0).rollback is True


def test_dry_run_decides_the_same_and_says_so():
    live = decide(POLICY, WindowStats(1000, 100), previous_breaches=2)
    dry = decide(RollbackPolicy(dry_run=True), WindowStats(1000, 100), previous_breaches=2)
    assert (dry.result, dry.rollback, dry.consecutive_breaches) == ("Failed", True, 3)
    assert (live.result, live.rollback, live.consecutive_breaches) == ("Failed", True, 3)
    assert dry.message.endswith("roll back (dry run: reported only)")
    assert live.message.endswith("breach 3 of 3: roll back")


def test_disabled_policy_counts_but_never_rolls_back():
    decision = decide(RollbackPolicy(enabled=False), WindowStats(1000, 100), previous_breaches=5)
    assert (decision.result, decision.consecutive_breaches) == ("Failed", 6)
    assert decision.rollback is False
    assert decision.message.endswith("(rollback disabled)")


@pytest.mark.parametrize("previous", [-1, 1.5, True, None])
def test_decide_refuses_a_bad_breach_count(previous):
    with pytest.raises(ValueError, match="previous_breaches"):
        decide(POLICY, WindowStats(100, 0), previous_breaches=previous)


# --- decide: quality rules --------------------------------------------------------------------

QUALITY_POLICY = RollbackPolicy(min_accuracy=0.9, max_rmse=2.0)
HEALTHY = WindowStats(1000, 0)


@pytest.mark.parametrize(
    ("quality", "result", "reason"),
    [
        ({"accuracy": 0.9 * 0.999}, "Failed", "AccuracyBelowMinimum"),
        ({"accuracy": 0.9}, "Passed", "ErrorRateWithinThreshold"),
        ({"accuracy": 0.9 * 1.001}, "Passed", "ErrorRateWithinThreshold"),
        ({"rmse": 2.0 * 1.001}, "Failed", "RmseAboveMaximum"),
        ({"rmse": 2.0}, "Passed", "ErrorRateWithinThreshold"),
        ({"rmse": 2.0 * 0.999}, "Passed", "ErrorRateWithinThreshold"),
        ({"accuracy": math.nan, "rmse": math.nan}, "Passed", "ErrorRateWithinThreshold"),
        ({}, "Passed", "ErrorRateWithinThreshold"),
        (None, "Passed", "ErrorRateWithinThreshold"),
    ],
)
def test_quality_rules(quality, result, reason):
    decision = decide(QUALITY_POLICY, HEALTHY, previous_breaches=0, quality=quality)
    assert (decision.result, decision.reason) == (result, reason)


def test_quality_without_limits_is_not_judged():
    decision = decide(POLICY, HEALTHY, previous_breaches=0, quality={"accuracy": 0.1, "rmse": 99})
    assert decision.result == "Passed"


def test_quality_breaches_count_like_error_breaches():
    decision = decide(QUALITY_POLICY, HEALTHY, previous_breaches=2, quality={"accuracy": 0.5})
    assert (decision.consecutive_breaches, decision.rollback) == (3, True)
    assert decision.message == "Accuracy 0.5 < 0.9; breach 3 of 3: roll back"


def test_quality_needs_min_requests_too():
    decision = decide(QUALITY_POLICY, WindowStats(10, 0), previous_breaches=2,
                      quality={"accuracy": 0.1})
    assert (decision.result, decision.reason, decision.consecutive_breaches) == (
        "Inconclusive", "TooFewRequests", 2)


def test_error_rate_reason_wins_and_message_lists_every_breach():
    decision = decide(QUALITY_POLICY, WindowStats(1000, 100), previous_breaches=0,
                      quality={"accuracy": 0.5, "rmse": 3.0})
    assert decision.reason == "ErrorRateAboveThreshold"
    assert "accuracy 0.5 < 0.9" in decision.message and "RMSE 3 > 2" in decision.message
