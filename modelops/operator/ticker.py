"""One loop that re-runs the pass of every known object each tick.

Used instead of a kopf timer per object: a timer makes kopf put a finalizer on every Model
(a write per object, and deletion that waits for the operator) and keeps an asyncio task per
object. Here one daemon thread walks the latest bodies the watch delivered and runs their passes
in a bounded pool, each in a copy of the kopf context it was recorded in (so `kopf.event` works).
"""

from __future__ import annotations

import contextvars
import logging
import threading
import time
from concurrent.futures import ThreadPoolExecutor, wait
from typing import Any, Callable, Mapping

log = logging.getLogger(__name__)

PassFn = Callable[[Mapping[str, Any], Mapping[str, Any]], None]


class Ticker:
    def __init__(self, name: str, interval: float, workers: int, run_pass: PassFn):
        self.name, self.interval, self.run_pass = name, interval, run_pass
        self._objects: dict[str, tuple[Mapping, contextvars.Context, Mapping]] = {}
        self._lock = threading.Lock()
        self._pool = ThreadPoolExecutor(workers, thread_name_prefix=f"{name}-tick")
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def track(self, uid: str, body: Mapping[str, Any], indexes: Mapping[str, Any]) -> None:
        """Remember the latest body (call from a kopf handler: its context is kept)."""
        with self._lock:
            self._objects[uid] = (body, contextvars.copy_context(), indexes)
            if self._thread is None:
                self._thread = threading.Thread(target=self._loop, name=self.name, daemon=True)
                self._thread.start()

    def forget(self, uid: str) -> None:
        with self._lock:
            self._objects.pop(uid, None)

    def stop(self) -> None:
        """Finish the current tick, then run no more (kopf's cleanup calls this)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=self.interval + 30)

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            started = time.monotonic()
            with self._lock:
                objects = list(self._objects.values())
            try:
                futures = [self._pool.submit(ctx.copy().run, self._safe_pass, body, indexes)
                           for body, ctx, indexes in objects]
            except RuntimeError:  # the interpreter is exiting and has shut the pool down
                return
            wait(futures)
            took = time.monotonic() - started
            if took > self.interval:
                log.warning(f"{self.name}: a tick over {len(objects)} objects took {took:.1f}s")

    def _safe_pass(self, body: Mapping[str, Any], indexes: Mapping[str, Any]) -> None:
        try:
            self.run_pass(body, indexes)
        except Exception:  # one object's failure must not stop the others' ticks
            meta = body.get("metadata", {})
            log.exception(f"Periodic pass of {meta.get('namespace')}/{meta.get('name')} failed")
