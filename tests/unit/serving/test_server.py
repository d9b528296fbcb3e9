"""gunicorn options derived from the settings, and the draining worker's stop."""

from __future__ import annotations

import selectors
import socket
import subprocess
import sys
from types import SimpleNamespace

import pytest

from modelops.serving.server import DrainingThreadWorker, child_exit, gunicorn_options
from modelops.serving.settings import ServingSettings


def test_options_follow_the_settings():
    options = gunicorn_options(ServingSettings(model_name="iris", host="127.0.0.1", port=9000,
                                               workers=3, threads=8, graceful_timeout_seconds=2.5))
    assert options["bind"] == ["127.0.0.1:9000"]
    assert (options["workers"], options["threads"]) == (3, 8)
    assert options["worker_class"] is DrainingThreadWorker
    assert options["reuse_port"] is True and options["preload_app"] is False
    assert options["graceful_timeout"] == 3  # whole seconds, rounded up
    assert options["control_socket_disable"] is True  # nothing may change the server at run time
    assert options["child_exit"] is child_exit
    assert options["proc_name"] == "modelops-serving-iris"


def test_ipv6_hosts_are_bracketed():
    assert gunicorn_options(ServingSettings(host="::", port=8080))["bind"] == ["[::]:8080"]


def test_a_stopping_worker_takes_waiting_connections_then_refuses_new_ones():
    listener = socket.create_server(("127.0.0.1", 0))
    listener.setblocking(False)
    port = listener.getsockname()[1]
    waiting = [socket.create_connection(("127.0.0.1", port), timeout=5) for _ in range(3)]
    worker = object.__new__(DrainingThreadWorker)  # only the stop logic is under test
    worker.sockets, worker.alive, worker._accepting = [listener], False, True
    worker.cfg = SimpleNamespace(reuse_port=True)
    worker.poller = selectors.DefaultSelector()
    worker.poller.register(listener, selectors.EVENT_READ)
    accepted = []
    worker.accept = lambda sock: accepted.append(sock.accept()[0])
    worker.set_accept_enabled(False)
    assert len(accepted) == 3  # the kernel had accepted them before the stop: they get served
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", port), timeout=5)
    for connection in accepted + waiting:
        connection.close()


def test_child_exit_forgets_a_dead_workers_live_gauges_and_ready_marker(tmp_path, monkeypatch):
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path))
    for name in ("gauge_livesum_4242.db", "gauge_livemax_4242.db", "counter_4242.db",
                 "histogram_4242.db", "ready-4242", "gauge_livesum_7.db", "ready-7"):
        (tmp_path / name).touch()
    child_exit(None, SimpleNamespace(pid=4242))
    # Counters and histograms stay: requests a dead worker answered still count, exactly.
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "counter_4242.db", "gauge_livesum_7.db", "histogram_4242.db", "ready-7"]


def test_the_entry_point_does_not_import_prometheus_client_before_the_directory_is_set():
    code = "import sys, modelops.serving.__main__; print('prometheus_client' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.stdout.strip() == "False", result.stderr


def test_a_model_worker_does_not_import_requests():
    # Its warning filters would be re-applied by sklearn once per tree of every forest prediction.
    code = ("import sys, modelops.serving.__main__, modelops.serving.server, modelops.serving.app; "
            "print('requests' in sys.modules)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.stdout.strip() == "False", result.stderr
