"""WorkQueue with real worker threads: coalescing, one pass per key at a time, due times, retry."""

from __future__ import annotations

import threading
import time

from modelops.operator.workqueue import WorkQueue


def wait_until(check, timeout=5.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.01)
    return False


def test_adds_while_queued_coalesce_into_one_pass():
    runs, gate = [], threading.Event()
    queue = WorkQueue("t", 1, lambda key: (gate.wait(5), runs.append(key))[1] and None)
    queue.add("blocker")
    queue.start()
    assert wait_until(lambda: queue.depth() == 0)
    for _ in range(5):
        queue.add("a")
    gate.set()
    assert wait_until(lambda: runs.count("a") == 1)
    time.sleep(0.1)
    queue.stop()
    assert runs == ["blocker", "a"]


def test_one_key_never_runs_twice_at_once_and_an_add_during_a_pass_reruns_it():
    running, overlaps, runs = [0], [], []
    release = threading.Event()

    def run(key):
        running[0] += 1
        overlaps.append(running[0])
        runs.append(key)
        if len(runs) == 1:
            release.wait(5)
        running[0] -= 1

    queue = WorkQueue("t", 4, run)
    queue.start()
    queue.add("a")
    assert wait_until(lambda: len(runs) == 1)
    queue.add("a")
    queue.add("a")
    release.set()
    assert wait_until(lambda: len(runs) == 2)
    time.sleep(0.1)
    queue.stop()
    assert runs == ["a", "a"] and max(overlaps) == 1


def test_a_pass_returning_seconds_runs_again_after_them_and_the_earliest_due_wins():
    times = []
    queue = WorkQueue("t", 1, lambda key: times.append(time.monotonic()) or (0.2 if len(times) < 3 else None))
    queue.start()
    queue.add("a", after=10)
    queue.add("a", after=0.05)
    assert wait_until(lambda: len(times) == 3)
    queue.stop()
    assert times[2] - times[1] >= 0.19 and times[1] - times[0] >= 0.19


def test_a_failing_pass_is_retried_and_other_keys_keep_running():
    calls = {"bad": 0, "good": 0}

    def run(key):
        calls[key] += 1
        if key == "bad" and calls[key] < 3:
            raise RuntimeError("boom")

    queue = WorkQueue("t", 1, run)
    queue.start()
    queue.add("bad")
    queue.add("good")
    assert wait_until(lambda: calls["bad"] == 3)
    queue.stop()
    assert calls["good"] == 1


def test_forget_drops_a_scheduled_pass():
    runs = []
    queue = WorkQueue("t", 1, runs.append)
    queue.start()
    queue.add("a", after=0.1)
    queue.forget("a")
    time.sleep(0.3)
    queue.stop()
    assert runs == []
