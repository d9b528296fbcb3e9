"""Adaptive batching: concurrent requests in one worker share one predict call.

Request threads submit their rows and wait; one batching thread takes the first waiting job,
keeps collecting while other requests are in flight in this worker (up to `max_size` rows or
`max_wait` seconds after the first), runs ONE predict over the concatenated rows and hands each
job its slice. A lone request is not held back: when nothing else is in flight it runs at once.
If the grouped call raises, each job is retried alone so one bad request cannot fail the others.
Thread-based; no HTTP.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable, Hashable

import numpy as np

log = logging.getLogger(__name__)

_POLL_SECONDS = 0.0005


class _Job:
    __slots__ = ("key", "rows", "done", "result", "error")

    def __init__(self, key: Hashable, rows: np.ndarray) -> None:
        self.key = key
        self.rows = rows
        self.done = threading.Event()
        self.result: np.ndarray | None = None
        self.error: BaseException | None = None


class AdaptiveBatcher:
    """Groups concurrent `submit` calls with the same key into one `predict(key, rows)` call."""

    def __init__(self, predict: Callable[[Hashable, np.ndarray], np.ndarray], *, max_size: int,
                 max_wait_seconds: float, in_flight: Callable[[], int]) -> None:
        self._predict = predict
        self._max_size = max_size
        self._max_wait = max_wait_seconds
        self._in_flight = in_flight
        self._queue: queue.SimpleQueue[_Job] = queue.SimpleQueue()
        self.calls = 0
        """Number of predict calls made (grouped or single), for tests and logs."""
        threading.Thread(target=self._run, name="modelops-batcher", daemon=True).start()

    def submit(self, key: Hashable, rows: np.ndarray) -> np.ndarray:
        """Predict `rows` (possibly together with other requests' rows); raises what predict raised."""
        job = _Job((key, rows.shape[1:]), rows)
        self._queue.put(job)
        job.done.wait()
        if job.error is not None:
            raise job.error
        return job.result

    def _run(self) -> None:
        while True:
            jobs = self._collect(self._queue.get())
            try:
                self._execute(jobs)
            except BaseException as error:  # never let the batching thread die
                log.exception("Batching failed")
                for job in jobs:
                    if not job.done.is_set():
                        job.error = error
                        job.done.set()

    def _collect(self, first: _Job) -> list[_Job]:
        jobs, size = [first], len(first.rows)
        deadline = time.monotonic() + self._max_wait
        while size < self._max_size:
            try:
                job = self._queue.get_nowait()
            except queue.Empty:
                # Wait only while other requests in this worker may still join the batch.
                remaining = deadline - time.monotonic()
                if self._in_flight() <= len(jobs) or remaining <= 0:
                    break
                try:
                    job = self._queue.get(timeout=min(remaining, _POLL_SECONDS))
                except queue.Empty:
                    continue
            jobs.append(job)
            size += len(job.rows)
        return jobs

    def _execute(self, jobs: list[_Job]) -> None:
        groups: dict[Hashable, list[_Job]] = {}
        for job in jobs:
            groups.setdefault(job.key, []).append(job)
        for key, group in groups.items():
            if len(group) == 1 or not self._run_group(key[0], group):
                for job in group:
                    self._run_alone(key[0], job)

    def _run_group(self, key: Hashable, group: list[_Job]) -> bool:
        rows = np.concatenate([job.rows for job in group])
        try:
            self.calls += 1
            result = self._predict(key, rows)
        except Exception:
            return False
        if len(result) != len(rows):
            return False
        start = 0
        for job in group:
            job.result = result[start: start + len(job.rows)]
            start += len(job.rows)
            job.done.set()
        return True

    def _run_alone(self, key: Hashable, job: _Job) -> None:
        try:
            self.calls += 1
            job.result = self._predict(key, job.rows)
        except Exception as error:
            job.error = error
        finally:
            job.done.set()
