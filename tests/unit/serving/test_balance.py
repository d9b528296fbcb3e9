"""Connection balance: the fair-share rule, the shared table, and the worker that sheds."""

from __future__ import annotations

import os
from types import SimpleNamespace

import pytest
from gunicorn.workers.gthread import ThreadWorker

from modelops.serving import server
from modelops.serving.balance import ConnectionTable, over_share
from modelops.serving.server import DrainingThreadWorker, child_exit, pre_fork


@pytest.mark.parametrize(("mine", "counts", "expected"), [
    (6, [6, 2], True),     # 8 connections hashed 6/2: shed
    (5, [5, 3], True),
    (4, [4, 4], False),
    (4, [4, 3], False),    # 7 connections: 4/3 is as even as it gets
    (2, [2, 0], True),     # a proxy's two connections on one worker
    (1, [1, 0], False),    # one client connection: nowhere better to go
    (9, [9, -1], False),   # the only live worker
    (3, [3, 3, 2], False),
    (5, [5, 2, 1], True),
])
def test_over_share(mine, counts, expected):
    assert over_share(mine, counts) is expected


def test_table_slots_are_claimed_released_and_shared_with_forked_workers():
    table = ConnectionTable(3)
    assert table.counts() == [-1, -1, -1]
    assert [table.claim(set()), table.claim({0}), table.claim({0, 1}), table.claim({0, 1, 2})] == [0, 1, 2, None]
    table.release(1)
    pid = os.fork()
    if pid == 0:  # a worker writes its own slot
        table.publish(2, 7)
        os._exit(0)
    os.waitpid(pid, 0)
    assert table.counts() == [0, -1, 7]


def test_the_master_gives_each_worker_its_own_slot_and_takes_it_back():
    arbiter = SimpleNamespace(app=SimpleNamespace(connections=ConnectionTable(2)), WORKERS={})
    first, second = SimpleNamespace(balance_slot=None, pid=11), SimpleNamespace(balance_slot=None, pid=12)
    pre_fork(arbiter, first)
    arbiter.WORKERS[first.pid] = first
    pre_fork(arbiter, second)
    arbiter.WORKERS[second.pid] = second
    assert (first.balance_slot, second.balance_slot) == (0, 1)
    arbiter.app.connections.publish(0, 5)
    child_exit(arbiter, first)
    del arbiter.WORKERS[first.pid]
    assert arbiter.app.connections.counts() == [-1, 0]
    replacement = SimpleNamespace(balance_slot=None, pid=13)
    pre_fork(arbiter, replacement)
    assert replacement.balance_slot == 0


def worker_holding(connections: int, table: ConnectionTable, slot: int) -> DrainingThreadWorker:
    worker = object.__new__(DrainingThreadWorker)  # only the balance logic is under test
    no_age_limit = SimpleNamespace(max_connection_age_seconds=0.0)
    worker.app = SimpleNamespace(connections=table, settings=no_age_limit)
    worker.balance_slot, worker.nr_conns = slot, connections
    return worker


def test_a_worker_over_its_share_closes_one_connection_per_interval(monkeypatch):
    clock = [100.0]
    monkeypatch.setattr(server, "time", SimpleNamespace(monotonic=lambda: clock[0]))
    table = ConnectionTable(2)
    table.publish(1, 2)
    busy = worker_holding(6, table, 0)
    closed = []
    monkeypatch.setattr(ThreadWorker, "handle_request", lambda self, req, conn: "served")
    request = SimpleNamespace(force_close=lambda: closed.append(True))
    assert busy.handle_request(request, None) == "served" and closed == [True]
    assert table.counts() == [6, 2]  # it published its own count
    assert busy.handle_request(request, None) == "served" and closed == [True]  # not again at once
    clock[0] += 2 * server.SHED_INTERVAL_SECONDS
    busy.handle_request(request, None)
    assert closed == [True, True]
    busy.nr_conns = 4
    table.publish(1, 4)  # the closed connections came back on the other worker: 4/4
    clock[0] += 2 * server.SHED_INTERVAL_SECONDS
    busy.handle_request(request, None)
    assert closed == [True, True]


def test_a_worker_within_its_share_or_without_a_slot_keeps_connections(monkeypatch):
    monkeypatch.setattr(ThreadWorker, "handle_request", lambda self, req, conn: "served")
    table = ConnectionTable(2)
    table.publish(1, 4)
    request = SimpleNamespace(force_close=lambda: pytest.fail("closed a connection"))
    assert worker_holding(4, table, 0).handle_request(request, None) == "served"
    assert worker_holding(9, table, None).handle_request(request, None) == "served"
