"""Run the app under gunicorn, configured from ServingSettings (no gunicorn CLI or config file).

gthread workers (processes x threads from settings). `reuse_port` gives every worker its own
SO_REUSEPORT listening socket, so the kernel spreads connections across workers instead of one
busy worker accepting them all; as that spread is a hash, a worker holding more than its share
of keep-alive connections closes one now and then so it lands anew (see balance.py). The master imports the libraries; each worker builds its own
app and loads the model itself; a worker that cannot load writes the termination message and
exits with gunicorn's boot-error code, which stops the whole server. SIGTERM is graceful:
workers take the connections already waiting for them, stop accepting, finish in-flight requests
(up to the graceful timeout), then exit. The master marks dead workers in the metrics directory.
No control socket: nothing can change the server at run time.
"""

from __future__ import annotations

import importlib
import logging
import math
import os
import select
import sys
import time
from pathlib import Path

from gunicorn.app.base import BaseApplication
from gunicorn.arbiter import Arbiter
from gunicorn.workers.gthread import ThreadWorker

from modelops import contract as c
from modelops.serving.balance import SHED_INTERVAL_SECONDS, ConnectionTable, over_share
from modelops.serving import handover
from modelops.serving.gate import ReadGate
from modelops.serving.failures import StartupFailure, write_termination_message
from modelops.serving.settings import ServingSettings
from modelops.serving.shared_dir import WorkerReadiness

log = logging.getLogger(__name__)

HEARTBEAT_TIMEOUT_SECONDS = 120
KEEPALIVE_SECONDS = 5
_MAX_DRAINED_CONNECTIONS = 100_000


def gunicorn_options(settings: ServingSettings) -> dict:
    """The gunicorn settings for `settings` (pure)."""
    host = f"[{settings.host}]" if ":" in settings.host else settings.host
    return {
        "bind": [f"{host}:{settings.port}"],
        "workers": settings.workers,
        "threads": settings.threads,
        "worker_class": DrainingThreadWorker,
        "reuse_port": True,
        "graceful_timeout": math.ceil(settings.graceful_timeout_seconds),  # gunicorn takes whole seconds
        "timeout": HEARTBEAT_TIMEOUT_SECONDS,
        "keepalive": KEEPALIVE_SECONDS,
        "preload_app": False,
        "control_socket_disable": True,
        "accesslog": None,
        "errorlog": "-",
        "loglevel": "info",
        "proc_name": f"modelops-serving-{settings.served_name}",
        "pre_fork": pre_fork,
        "child_exit": child_exit,
    }


class DrainingThreadWorker(ReadGate, ThreadWorker):
    """gthread worker that loses no connection the kernel accepted before SIGTERM.

    Requests pass the read gate (gate.py) before they take a thread.

    A stopping gthread worker stops accepting, and connections still waiting in its listen
    queue would be reset when the socket closes. This worker first accepts (and then serves)
    every waiting connection, then closes its own SO_REUSEPORT socket at once, so the kernel
    refuses later connections instead of queueing them for a reset.
    """

    def set_accept_enabled(self, enabled: bool) -> None:
        stopping = not enabled and not self.alive and self._accepting
        if stopping:
            self._accept_waiting()
        super().set_accept_enabled(enabled)
        if stopping and self.cfg.reuse_port:  # with reuse_port the socket is this worker's own
            for listener in self.sockets:
                listener.close()

    def _accept_waiting(self) -> None:
        for listener in self.sockets:
            for _ in range(_MAX_DRAINED_CONNECTIONS):
                waiting, _, _ = select.select([listener], [], [], 0)
                if not waiting:
                    break
                self.accept(listener)

    # --- connection balance (balance.py) --------------------------------------------------------
    balance_slot: int | None = None
    """This worker's slot in the master's ConnectionTable (set by pre_fork)."""
    _last_shed = 0.0

    def notify(self) -> None:
        super().notify()  # the main loop's heartbeat, at least once a second
        self._publish_connections()

    def handle_request(self, req, conn):
        if (self._holds_too_many_connections() or self._out_of_service()
                or self._outlived_its_age(conn)):
            req.force_close()  # answered with `Connection: close`; the client reconnects
        return super().handle_request(req, conn)

    _role = None
    _connection_age = None

    def _outlived_its_age(self, conn) -> bool:
        """The connection reached its maximum age (handover.py): send its client to reconnect."""
        if self._connection_age is None:
            self._connection_age = handover.ConnectionAge(
                self.app.settings.max_connection_age_seconds)
        return self._connection_age.expired(conn)

    def _out_of_service(self) -> bool:
        """The pod's Service moved on (handover.py): send clients to reconnect."""
        if self._role is None:
            self._role = handover.from_env()
        return self._role.standby()

    def _publish_connections(self) -> ConnectionTable | None:
        table = getattr(self.app, "connections", None)
        if table is None or self.balance_slot is None:
            return None
        table.publish(self.balance_slot, self.nr_conns)
        return table

    def _holds_too_many_connections(self) -> bool:
        table = self._publish_connections()
        now = time.monotonic()
        if table is None or now - self._last_shed < SHED_INTERVAL_SECONDS:
            return False
        if not over_share(self.nr_conns, table.counts()):
            return False
        self._last_shed = now
        return True


class ServingApplication(BaseApplication):
    """gunicorn application whose workers each build the app for `settings`."""

    def __init__(self, settings: ServingSettings) -> None:
        self.settings = settings
        self.connections = ConnectionTable(settings.workers)
        """Open connections per worker, shared with the workers (created before they fork)."""
        super().__init__()

    def load_config(self) -> None:
        for key, value in gunicorn_options(self.settings).items():
            if key in self.cfg.settings:  # older gunicorn: skip settings it does not have
                self.cfg.set(key, value)
        # Import Flask, numpy and scikit-learn once in the master: workers fork with them loaded
        # and accept connections at once. The model itself is still loaded by each worker.
        importlib.import_module("modelops.serving.app")

    def load(self):
        from modelops.serving.app import build_app  # in the worker, after the fork

        return build_app(self.settings, on_failure=self._stop_worker)

    def _stop_worker(self, failure: StartupFailure) -> None:
        """Called in a worker whose model failed to load: report, then stop the server."""
        log.error("%s", failure.line())
        write_termination_message(self.settings.termination_log, failure)
        sys.stderr.flush()
        os._exit(Arbiter.WORKER_BOOT_ERROR)  # the master then halts and main() exits 1


def pre_fork(server: Arbiter, worker) -> None:
    """gunicorn hook (master): give the new worker a free slot in the connection table."""
    table = getattr(server.app, "connections", None)
    if table is not None:
        taken = {w.balance_slot for w in server.WORKERS.values() if w.balance_slot is not None}
        worker.balance_slot = table.claim(taken)


def child_exit(server: Arbiter, worker) -> None:
    """gunicorn hook (master): forget a dead worker's connections, live gauges and ready marker."""
    table = getattr(getattr(server, "app", None), "connections", None)
    if table is not None and getattr(worker, "balance_slot", None) is not None:
        table.release(worker.balance_slot)
    from prometheus_client import multiprocess

    directory = os.environ.get(c.ENV_METRICS_DIR)
    if directory:
        multiprocess.mark_process_dead(worker.pid, directory)
        WorkerReadiness(Path(directory), 0).forget(worker.pid)
