"""process: /proc parsing, start/health/stop of real (tiny) processes, never a stranger's PID."""

from __future__ import annotations

import dataclasses
import http.server
import os
import signal
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from modelops.devcluster import process
from modelops.devcluster.cluster import free_loopback_ports

CLOSED_PORT_URL = f"http://127.0.0.1:{free_loopback_ports(1)[0]}/health"


def component(*argv: str, url: str = CLOSED_PORT_URL) -> process.Component:
    return process.Component("probe", argv, url)


@pytest.fixture
def health_server() -> Iterator[str]:
    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200 if self.path == "/ok" else 503)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.HTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    server.server_close()


def test_parse_proc_stat_survives_spaces_and_parens_in_the_name() -> None:
    fields = " ".join(str(n) for n in range(4, 23))  # fields 4..22
    assert process.parse_proc_stat(f"42 (a) b (c)) S {fields} 23 24") == ("S", 22)


def test_component_health_url_must_be_loopback() -> None:
    with pytest.raises(ValueError, match="health_url"):
        component("true", url="http://192.0.2.1:80/health")
    with pytest.raises(ValueError, match="argv"):
        process.Component("empty", (), CLOSED_PORT_URL)


def test_probe_is_true_only_for_200(health_server: str) -> None:
    assert process.probe(component("true", url=f"{health_server}/ok"))
    assert not process.probe(component("true", url=f"{health_server}/bad"))
    assert not process.probe(component("true"))


def test_spawn_then_stop_with_sigterm(tmp_path: Path) -> None:
    running = process.spawn(component("sleep", "60"), tmp_path / "log", die_with_parent=True)
    assert process.is_running(running)
    assert os.getsid(running.pid) == running.pid  # its own session
    assert process.stop(running, timeout=10) == "stopped"
    assert not process.is_running(running)
    assert process.stop(running, timeout=10) == "not running"


def test_stop_escalates_to_sigkill(tmp_path: Path) -> None:
    stubborn = (
        sys.executable,
        "-c",
        "import signal, time, sys\n"
        "signal.signal(signal.SIGTERM, signal.SIG_IGN); print('up', flush=True)\n"
        "time.sleep(60)",
    )
    running = process.spawn(component(*stubborn), tmp_path / "log", die_with_parent=True)
    # Wait until the handler is installed, or SIGTERM would still kill it the normal way.
    for _ in range(200):
        if "up" in process.tail(running.log_path):
            break
        threading.Event().wait(0.05)
    assert process.stop(running, timeout=0.5) == "killed"
    assert not process.is_running(running)


def test_a_recycled_pid_is_never_signalled(tmp_path: Path) -> None:
    running = process.spawn(component("sleep", "60"), tmp_path / "log", die_with_parent=True)
    stranger = dataclasses.replace(running, start_ticks=running.start_ticks + 1)
    try:
        assert not process.is_running(stranger)
        assert process.stop(stranger, timeout=1) == "not running"
        assert process.is_running(running)
    finally:
        os.kill(running.pid, signal.SIGKILL)
        process.stop(running, timeout=10)


def test_exit_during_start_reports_code_and_log_tail(tmp_path: Path) -> None:
    failing = component("sh", "-c", "echo first; echo 'bad flag --x'; exit 3")
    running = process.spawn(failing, tmp_path / "probe.log", die_with_parent=True)
    with pytest.raises(process.StartError) as raised:
        process.wait_healthy(running, timeout=30)
    message = str(raised.value)
    assert "probe exited (exit code 3)" in message
    assert "bad flag --x" in message and str(tmp_path / "probe.log") in message


def test_unhealthy_until_timeout_is_an_error(tmp_path: Path) -> None:
    running = process.spawn(component("sleep", "60"), tmp_path / "log", die_with_parent=True)
    try:
        with pytest.raises(process.StartError, match="not healthy after 0 s"):
            process.wait_healthy(running, timeout=0.3)
    finally:
        process.stop(running, timeout=10)


def test_wait_healthy_returns_once_the_endpoint_answers(tmp_path: Path, health_server: str) -> None:
    running = process.spawn(
        component("sleep", "60", url=f"{health_server}/ok"), tmp_path / "log", die_with_parent=True
    )
    try:
        process.wait_healthy(running, timeout=30)
    finally:
        process.stop(running, timeout=10)


def test_rss_and_tail(tmp_path: Path) -> None:
    assert process.rss_bytes(os.getpid()) > 0
    assert process.tail(tmp_path / "missing.log") == ""
    log = tmp_path / "x.log"
    log.write_text("".join(f"line {n}\n" for n in range(100)))
    assert process.tail(log, 2) == "line 98\nline 99\n"
