"""Adaptive batching: concurrent requests share one predict call and get their own rows back."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from modelops.serving.batching import AdaptiveBatcher

LONG_WAIT = 30.0  # a group closes when full, long before this; no timing is asserted


class Recorder:
    """A predict function that records each call's key and row count."""

    def __init__(self, fail_on: float | None = None) -> None:
        self.calls: list[tuple[str, int]] = []
        self._lock = threading.Lock()
        self.fail_on = fail_on

    def __call__(self, key: str, rows: np.ndarray) -> np.ndarray:
        with self._lock:
            self.calls.append((key, len(rows)))
        if self.fail_on is not None and (rows[:, 0] == self.fail_on).any():
            raise ValueError("bad row")
        return rows[:, 0] * 10 if key == "predict" else rows.sum(axis=1)


def submit_together(batcher: AdaptiveBatcher, jobs: list[tuple[str, np.ndarray]]) -> list:
    """Submit every job from its own thread at once; return results (or exceptions) in order."""
    results: list = [None] * len(jobs)
    barrier = threading.Barrier(len(jobs))

    def run(index: int) -> None:
        barrier.wait()
        try:
            results[index] = batcher.submit(*jobs[index])
        except Exception as error:
            results[index] = error

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(jobs))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    return results


def test_concurrent_requests_are_grouped_and_split_back():
    predict = Recorder()
    batcher = AdaptiveBatcher(predict, max_size=8, max_wait_seconds=LONG_WAIT, in_flight=lambda: 8)
    jobs = [("predict", np.array([[float(i), 0.0]])) for i in range(8)]
    results = submit_together(batcher, jobs)
    assert predict.calls == [("predict", 8)]
    assert [r.tolist() for r in results] == [[i * 10.0] for i in range(8)]


def test_multi_row_requests_keep_their_slices():
    predict = Recorder()
    batcher = AdaptiveBatcher(predict, max_size=6, max_wait_seconds=LONG_WAIT, in_flight=lambda: 3)
    jobs = [("predict", np.array([[1.0], [2.0]])), ("predict", np.array([[3.0]])),
            ("predict", np.array([[4.0], [5.0], [6.0]]))]
    results = submit_together(batcher, jobs)
    assert predict.calls == [("predict", 6)]
    assert sorted(r.tolist() for r in results) == sorted([[10.0, 20.0], [30.0], [40.0, 50.0, 60.0]])
    for (_, rows), result in zip(jobs, results):
        assert result.tolist() == (rows[:, 0] * 10).tolist()


def test_different_outputs_are_not_mixed():
    predict = Recorder()
    batcher = AdaptiveBatcher(predict, max_size=4, max_wait_seconds=LONG_WAIT, in_flight=lambda: 4)
    jobs = [("predict", np.array([[1.0, 1.0]])), ("proba", np.array([[2.0, 2.0]])),
            ("predict", np.array([[3.0, 3.0]])), ("proba", np.array([[4.0, 4.0]]))]
    results = submit_together(batcher, jobs)
    assert sorted(predict.calls) == [("predict", 2), ("proba", 2)]
    assert [r.tolist() for r in results] == [[10.0], [4.0], [30.0], [8.0]]


def test_a_failing_row_fails_only_its_own_request():
    predict = Recorder(fail_on=3.0)
    batcher = AdaptiveBatcher(predict, max_size=4, max_wait_seconds=LONG_WAIT, in_flight=lambda: 4)
    jobs = [("predict", np.array([[float(i)]])) for i in range(4)]
    results = submit_together(batcher, jobs)
    assert isinstance(results[3], ValueError)
    assert [r.tolist() for r in results[:3]] == [[0.0], [10.0], [20.0]]
    assert predict.calls[0] == ("predict", 4) and len(predict.calls) == 5  # grouped, then alone


def test_a_lone_request_runs_without_waiting_for_company():
    predict = Recorder()
    batcher = AdaptiveBatcher(predict, max_size=64, max_wait_seconds=LONG_WAIT, in_flight=lambda: 1)
    done = threading.Event()
    result = []
    threading.Thread(target=lambda: (result.append(batcher.submit("predict", np.array([[7.0]]))),
                                     done.set())).start()
    assert done.wait(timeout=10), "a lone request waited for the batch window"
    assert result[0].tolist() == [70.0] and batcher.calls == 1


def test_errors_reach_the_caller():
    batcher = AdaptiveBatcher(Recorder(fail_on=1.0), max_size=4, max_wait_seconds=0.0,
                              in_flight=lambda: 1)
    with pytest.raises(ValueError, match="bad row"):
        batcher.submit("predict", np.array([[1.0]]))
