"""Feedback scoring (pure) and the shared sliding-window store."""

from __future__ import annotations

import threading

import pytest

from modelops.serving.errors import InvalidInput, NotFound
from modelops.serving.feedback import FeedbackStore, quality_metric, score


def test_quality_metric_by_kind():
    assert quality_metric("regressor") == "rmse"
    assert quality_metric("classifier") == quality_metric("other") == "accuracy"


@pytest.mark.parametrize(("predicted", "truth", "metric", "expected"), [
    ([0, 1, 2], [0, 1, 1], "accuracy", (3.0, 2.0, 0.0)),
    (["a", "b"], ["a", "b"], "accuracy", (2.0, 2.0, 0.0)),
    ([1, 2], [1.0, 5], "accuracy", (2.0, 1.0, 0.0)),
    ([1.0, 2.0], [2.0, 0.0], "rmse", (2.0, 0.0, 5.0)),
    ([[1.0, 2.0]], [[1.0, 4.0]], "rmse", (2.0, 0.0, 4.0)),
])
def test_score(predicted, truth, metric, expected):
    assert score(predicted, truth, metric) == expected


@pytest.mark.parametrize(("predicted", "truth", "metric", "fragment"), [
    ([1], 1, "accuracy", "must be a list"),
    ([1, 2], [1], "accuracy", "has 1 values but that prediction had 2 rows"),
    ([1.0], ["x"], "rmse", "finite numbers"),
    ([1.0], [float("nan")], "rmse", "finite numbers"),
    ([1.0], [True], "rmse", "finite numbers"),
    ([[1.0, 2.0]], [[1.0]], "rmse", "as many values"),
])
def test_bad_truth(predicted, truth, metric, fragment):
    with pytest.raises(InvalidInput, match=fragment):
        score(predicted, truth, metric)


def test_store_scores_remembered_predictions(tmp_path):
    store = FeedbackStore(tmp_path / "f.sqlite3", window=100)
    store.remember("a", [0, 1])
    store.remember("b", [2])
    assert store.record("a", [0, 0], "accuracy")["value"] == 0.5
    assert store.record("b", [2], "accuracy")["value"] == 1.0
    assert store.quality("accuracy") == pytest.approx(2 / 3)
    assert store.record("a", [0, 1], "accuracy")["value"] == 1.0  # a correction replaces it
    assert store.quality("accuracy") == 1.0


def test_store_forgets_beyond_the_window(tmp_path):
    store = FeedbackStore(tmp_path / "f.sqlite3", window=5)
    for index in range(20):
        store.remember(f"id-{index}", [index])
    store.flush()
    with pytest.raises(NotFound, match="the last 5 are kept"):
        store.record("id-0", [0], "accuracy")
    assert store.record("id-19", [19], "accuracy")["value"] == 1.0
    for index in range(15, 19):
        store.record(f"id-{index}", [-1], "accuracy")
    store.record("id-19", [19], "accuracy")
    assert store.quality("accuracy") == pytest.approx(1 / 5)


def test_no_feedback_means_no_quality(tmp_path):
    assert FeedbackStore(tmp_path / "f.sqlite3", window=5).quality("rmse") is None


def test_predictions_are_shared_between_stores_on_one_file(tmp_path):
    # Two workers = two stores on the same file; feedback may reach either.
    path = tmp_path / "shared.sqlite3"
    writer, reader = FeedbackStore(path, window=50), FeedbackStore(path, window=50)
    writer.remember("x", [1.0, 2.0])
    writer.flush()
    assert reader.record("x", [1.0, 4.0], "rmse")["value"] == pytest.approx(2 ** 0.5)
    assert writer.quality("rmse") == pytest.approx(2 ** 0.5)


def test_concurrent_remembering(tmp_path):
    store = FeedbackStore(tmp_path / "f.sqlite3", window=10_000)

    def remember(offset: int) -> None:
        for index in range(200):
            store.remember(f"{offset}-{index}", [index])

    threads = [threading.Thread(target=remember, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    store.flush()
    assert all(store.record(f"{n}-199", [199], "accuracy")["value"] == 1.0 for n in range(4))


def test_predictions_gather_into_one_transaction_and_feedback_does_not_wait_for_it(tmp_path):
    # The writer would linger a minute before its next transaction; record() must cut that short.
    store = FeedbackStore(tmp_path / "f.sqlite3", window=100, write_interval=60.0)
    for index in range(3):
        store.remember(f"id-{index}", [index])
    assert store.record("id-2", [2], "accuracy")["value"] == 1.0
    assert store.transactions == 1
    store.remember("late", [5])
    assert store.flush() is True
    assert store.transactions == 2 and store.record("late", [4], "accuracy")["value"] == 0.0


def test_a_long_backlog_is_written_in_full_batches(tmp_path):
    store = FeedbackStore(tmp_path / "f.sqlite3", window=10, write_interval=60.0)
    for index in range(2500):
        store.remember(f"id-{index}", [index])
    assert store.flush() is True
    assert store.transactions == 3
    assert store.record("id-2499", [2499], "accuracy")["value"] == 1.0
