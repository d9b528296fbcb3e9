"""One coalescing work queue per kind: watch events mark keys dirty, workers run their passes.

A key (namespace, name) is in the queue at most once, and one worker at most runs its pass: an
add while it is queued coalesces, an add while its pass runs makes it run once more afterwards.
So there are no per-object locks, and a pass always starts from the latest object the watch
delivered (it reads the index itself). A pass returns when it wants to run again (seconds, e.g.
the next analysis scrape), or None; one that raises is retried with exponential backoff. This is
controller-runtime's workqueue with `AddAfter`, without finalizers or a timer per object: due
times live in one heap. Passes run in a copy of the kopf context the queue was started in (so
`kopf.event` works from worker threads).
"""

from __future__ import annotations

import contextvars
import heapq
import itertools
import logging
import threading
import time
from collections import deque
from typing import Callable, Hashable

from modelops.operator import metrics

log = logging.getLogger(__name__)

Pass = Callable[[Hashable], "float | None"]
BACKOFF_BASE_SECONDS = 0.5
BACKOFF_MAX_SECONDS = 60.0


class WorkQueue:
    def __init__(self, name: str, workers: int, run_pass: Pass,
                 clock: Callable[[], float] = time.monotonic):
        self.name, self.workers, self.run_pass, self.clock = name, workers, run_pass, clock
        self._ready: deque[Hashable] = deque()
        self._queued: set[Hashable] = set()
        self._running: set[Hashable] = set()
        self._again: set[Hashable] = set()
        self._due: dict[Hashable, float] = {}
        self._heap: list[tuple[float, int, Hashable]] = []
        self._failures: dict[Hashable, int] = {}
        self._seq = itertools.count()
        self._cond = threading.Condition()
        self._threads: list[threading.Thread] = []
        self._stopping = False
        self._context: contextvars.Context | None = None

    # --- producers --------------------------------------------------------------------------
    def add(self, key: Hashable, after: float = 0.0) -> None:
        """Run the key's pass now (after <= 0) or in `after` seconds (the earliest due wins)."""
        with self._cond:
            if after > 0:
                due = self.clock() + after
                if self._due.get(key, float("inf")) > due:
                    self._due[key] = due
                    heapq.heappush(self._heap, (due, next(self._seq), key))
            else:
                self._due.pop(key, None)
                self._enqueue(key)
            self._cond.notify()

    def forget(self, key: Hashable) -> None:
        """The object is gone: drop it from the queue and its schedule (a running pass ends)."""
        with self._cond:
            self._due.pop(key, None)
            self._failures.pop(key, None)
            self._again.discard(key)
            if key in self._queued:
                self._queued.discard(key)
                self._ready.remove(key)

    def depth(self) -> int:
        with self._cond:
            return len(self._ready)

    # --- lifecycle --------------------------------------------------------------------------
    def start(self, context: contextvars.Context | None = None) -> None:
        """Start the workers once (later calls do nothing); passes run in `context`."""
        with self._cond:
            if self._threads or self._stopping:
                return
            self._context = context or contextvars.copy_context()
            self._threads = [threading.Thread(target=self._work, name=f"{self.name}-{i}",
                                              daemon=True) for i in range(self.workers)]
        for thread in self._threads:
            thread.start()

    def stop(self, timeout: float = 30.0) -> None:
        """Finish the passes in progress, start no more."""
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        deadline = time.monotonic() + timeout
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))

    # --- workers ----------------------------------------------------------------------------
    def _enqueue(self, key: Hashable) -> None:
        if key in self._running:
            self._again.add(key)
        elif key not in self._queued:
            self._queued.add(key)
            self._ready.append(key)

    def _promote_due(self) -> float | None:
        """Move due keys to the ready queue; seconds until the next due time, or None."""
        now = self.clock()
        while self._heap:
            due, _, key = self._heap[0]
            if self._due.get(key) != due:
                heapq.heappop(self._heap)  # superseded by an earlier due or an add()
            elif due <= now:
                heapq.heappop(self._heap)
                del self._due[key]
                self._enqueue(key)
            else:
                return due - now
        return None

    def _take(self) -> Hashable | None:
        with self._cond:
            while not self._stopping:
                wait = self._promote_due()
                if self._ready:
                    key = self._ready.popleft()
                    self._queued.discard(key)
                    self._running.add(key)
                    return key
                self._cond.wait(wait)
            return None

    def _work(self) -> None:
        while (key := self._take()) is not None:
            again: float | None = None
            try:
                metrics.PASSES.labels(self.name).inc()
                again = self._context.copy().run(self.run_pass, key)
                with self._cond:
                    self._failures.pop(key, None)
            except Exception:  # one object's failure must not stop the others' passes
                with self._cond:
                    failures = self._failures[key] = self._failures.get(key, 0) + 1
                again = min(BACKOFF_MAX_SECONDS, BACKOFF_BASE_SECONDS * 2 ** (failures - 1))
                log.exception(f"{self.name}: pass of {key} failed (retry in {again:g}s)")
            with self._cond:
                self._running.discard(key)
                if key in self._again:
                    self._again.discard(key)
                    self._enqueue(key)
                    self._cond.notify()
            if again is not None:
                self.add(key, after=again)
