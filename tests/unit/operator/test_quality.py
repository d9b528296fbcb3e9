"""Quality maths from counters, table-driven against scikit-learn on the same rows."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from sklearn.metrics import (accuracy_score, mean_absolute_error, mean_squared_error,
                             precision_score, recall_score)

from modelops.operator.quality import QualityCounts, QualityWindow, quality_breaches, window_counts


def counts_for(truth, predicted, regression=False):
    """What the serving pods' counters would hold after scoring these rows."""
    if regression:
        errors = [p - t for p, t in zip(predicted, truth)]
        return QualityCounts(len(truth), 0, sum(abs(e) for e in errors), sum(e * e for e in errors))
    classes: dict = {}
    for t, p in zip(truth, predicted):
        if t == p:
            classes.setdefault(str(t), {}).setdefault("tp", 0)
            classes[str(t)]["tp"] += 1
        else:
            for k, o in ((str(p), "fp"), (str(t), "fn")):
                classes.setdefault(k, {}).setdefault(o, 0)
                classes[k][o] += 1
    return QualityCounts(len(truth), sum(t == p for t, p in zip(truth, predicted)), classes=classes)


CLASSIFICATION = [
    ([0, 1, 2, 2, 1], [0, 2, 2, 2, 0]),
    ([0, 0, 0, 0], [0, 0, 0, 1]),
    (["a", "b", "c"], ["c", "a", "b"]),
    ([1, 1, 1], [1, 1, 1]),
    ([0, 1, 2, 3, 0, 1, 2, 3], [0, 1, 1, 1, 3, 3, 3, 3]),
]


@pytest.mark.parametrize(("truth", "predicted"), CLASSIFICATION)
def test_classifier_matches_sklearn(truth, predicted):
    window = QualityWindow(counts_for(truth, predicted))
    assert window.accuracy == pytest.approx(accuracy_score(truth, predicted))
    assert window.precision == pytest.approx(
        precision_score(truth, predicted, average="macro", zero_division=0))
    assert window.recall == pytest.approx(
        recall_score(truth, predicted, average="macro", zero_division=0))
    assert window.rmse is None and window.mae is None


@pytest.mark.parametrize(("truth", "predicted"), [
    ([1.0, 2.0, 3.0], [1.5, 2.0, 2.0]), ([0.0], [10.0]), ([-1.0, 4.0, 2.5, 8.0], [0.0, 4.0, 3.0, 1.0])])
def test_regressor_matches_sklearn(truth, predicted):
    window = QualityWindow(counts_for(truth, predicted, regression=True))
    assert window.rmse == pytest.approx(mean_squared_error(truth, predicted) ** 0.5)
    assert window.mae == pytest.approx(mean_absolute_error(truth, predicted))


def test_pods_weighted_by_rows_and_restarts_counted():
    # pod a scores 90 right of 100 in the window; pod b 0 of 10, then restarts and scores 5 of 5
    truth_a, pred_a = [0] * 100, [0] * 90 + [1] * 10
    first = {"a": QualityCounts(), "b": QualityCounts()}
    second = {"a": counts_for(truth_a, pred_a), "b": counts_for([0] * 10, [1] * 10)}
    third = {"a": second["a"], "b": counts_for([0] * 5, [0] * 5)}  # b restarted
    window = QualityWindow(window_counts([first, second, third]))
    everything = truth_a + [0] * 10 + [0] * 5, pred_a + [1] * 10 + [0] * 5
    assert window.counts.rows == 115
    assert window.accuracy == pytest.approx(accuracy_score(*everything))
    assert window.precision == pytest.approx(precision_score(*everything, average="macro",
                                                             zero_division=0))


def test_policy_needs_minimum_rows_and_names_the_rule():
    policy = SimpleNamespace(min_accuracy=0.9, min_precision=None, min_recall=0.9, max_rmse=None,
                             max_mae=None, min_scored_rows=100)
    one_wrong = QualityWindow(counts_for([0], [1]))
    assert quality_breaches(policy, one_wrong) == []
    bad = QualityWindow(counts_for([0, 1] * 60, [0, 0] * 60))
    reasons = quality_breaches(policy, bad)
    assert [r for r, _ in reasons] == ["AccuracyBelowMinimum", "RecallBelowMinimum"]
    assert "accuracy 0.5 < 0.9 over 120 scored rows" in reasons[0][1]
    regressor = SimpleNamespace(min_accuracy=None, min_precision=None, min_recall=None,
                                max_rmse=1.0, max_mae=None, min_scored_rows=2)
    assert quality_breaches(regressor, QualityWindow(counts_for([0.0, 0.0], [3.0, 3.0], True)))[0][0] \
        == "RmseAboveMaximum"


def test_decide_fails_on_quality_without_min_requests():
    from modelops.operator.analysis import FAILED, RollbackPolicy, WindowStats, decide

    policy = RollbackPolicy.from_spec({"minAccuracy": 0.9, "minRequests": 1000,
                                       "consecutiveBreaches": 1})
    bad = QualityWindow(counts_for([0, 1] * 60, [0, 0] * 60))
    decision = decide(policy, WindowStats(requests=3, errors=0), previous_breaches=0,
                      quality_window=bad)
    assert decision.result == FAILED and decision.rollback
    assert decision.reason == "AccuracyBelowMinimum" and "120 scored rows" in decision.message
    few = QualityWindow(counts_for([0] * 5, [1] * 5))
    assert decide(policy, WindowStats(requests=3, errors=0), previous_breaches=0,
                  quality_window=few).result == "Inconclusive"


def test_scraped_counters_are_parsed_and_summed():
    from modelops.operator.metrics_source import parse_samples, quality_counters

    text = "\n".join([
        '# TYPE modelops_feedback_rows_total counter',
        'modelops_feedback_rows_total{model="iris",version="1"} 10',
        'modelops_feedback_rows_total{model="iris",version="2"} 99',
        '# TYPE modelops_feedback_correct_total counter',
        'modelops_feedback_correct_total{model="iris",version="1"} 7',
        '# TYPE modelops_feedback_class_total counter',
        'modelops_feedback_class_total{model="iris",version="1",class="0",outcome="tp"} 7',
        'modelops_feedback_class_total{model="iris",version="1",class="1",outcome="fp"} 3',
        'modelops_feedback_class_total{model="iris",version="1",class="0",outcome="fn"} 3', ""])
    counts = quality_counters(parse_samples(text), model="iris", version="1")
    assert (counts.rows, counts.correct) == (10, 7)
    assert counts.classes == {"0": {"tp": 7, "fn": 3}, "1": {"fp": 3}}
    assert QualityWindow(counts).accuracy == 0.7
