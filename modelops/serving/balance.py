"""Even out keep-alive connections across gunicorn workers.

Each worker listens on its own SO_REUSEPORT socket, and the kernel hashes every new connection
to one of them. Keep-alive clients then stay where they landed, so 8 connections easily split
6/2 and the worker with 2 leaves its core half idle (measured: 4418/2138 requests per worker).
So every worker publishes how many connections it holds in a small table of shared memory that
the master creates before it forks (one slot per worker). A worker holding more than its fair
share, ceil(total / live workers), answers its next request with `Connection: close` (at most
one every SHED_INTERVAL_SECONDS); the client reconnects and the kernel hashes the new connection
anew, until the counts are even. `over_share` is pure; the table is anonymous shared memory
(no file), written by one worker per slot.
"""

from __future__ import annotations

import mmap
from collections.abc import Collection, Sequence

SHED_INTERVAL_SECONDS = 0.05
"""Long enough for the last connection closed to have reconnected before the next decision."""
_FREE = -1
_SLOT_BYTES = 8


def over_share(mine: int, counts: Sequence[int]) -> bool:
    """Whether a worker with `mine` connections holds more than its share of `counts`' total.

    `counts` has one entry per slot, this worker's included; negative entries are free slots.
    """
    live = [count for count in counts if count >= 0]
    if len(live) < 2:
        return False
    share = -(-sum(live) // len(live))  # ceiling: an odd connection out is no imbalance
    return mine > share


class ConnectionTable:
    """Open connections per worker slot, in memory shared by the master and its workers."""

    def __init__(self, slots: int) -> None:
        self._memory = mmap.mmap(-1, _SLOT_BYTES * max(slots, 1))  # MAP_SHARED: survives fork
        self._counts = memoryview(self._memory).cast("q")
        for slot in range(len(self._counts)):
            self._counts[slot] = _FREE

    def claim(self, taken: Collection[int]) -> int | None:
        """Master, before a fork: the lowest slot not in `taken`, marked live; None when full."""
        for slot in range(len(self._counts)):
            if slot not in taken:
                self._counts[slot] = 0
                return slot
        return None

    def release(self, slot: int) -> None:
        """Master, when a worker exited: its slot no longer counts."""
        self._counts[slot] = _FREE

    def publish(self, slot: int, connections: int) -> None:
        self._counts[slot] = connections

    def counts(self) -> list[int]:
        return self._counts.tolist()
