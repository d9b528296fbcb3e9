"""Start, health-check and stop the local cluster's processes, one generic `Component` at a time.

A `Component` is a name, an argv and a health URL; nothing here knows about Kubernetes, so a
node's processes (kubelet, containerd, ...) start the same way. Every started process is
remembered as a `RunningProcess` with its PID *and* its kernel start time, and is signalled only
while both still match, so a recycled PID is never signalled. Processes get their own session
(Ctrl-C in the terminal does not reach them) and can optionally die with their parent.
Health checks talk only to loopback and ignore proxy settings.
"""

from __future__ import annotations

import ctypes
import os
import signal
import ssl
import subprocess
import time
import urllib.error
import urllib.request
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

POLL_SECONDS = 0.2
PROBE_TIMEOUT_SECONDS = 2.0
_PR_SET_PDEATHSIG = 1
_LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")
# Processes this Python process started, so their exit codes can be read (and zombies reaped).
# A later `down` command has only the PIDs; everything below also works without this map.
_CHILDREN: dict[int, subprocess.Popen[bytes]] = {}


class StartError(RuntimeError):
    """A component exited or stayed unhealthy while starting; the message carries its log tail."""


@dataclass(frozen=True)
class Component:
    """A process of the cluster: how to run it and where it reports healthy.

    `ca_file` verifies the health endpoint's certificate (None: the endpoint's own self-signed
    loopback certificate is accepted unverified, as envtest does); `client_cert` is a
    (cert, key) pair presented to it.
    """

    name: str
    argv: tuple[str, ...]
    health_url: str
    ca_file: Path | None = None
    client_cert: tuple[Path, Path] | None = None

    def __post_init__(self) -> None:
        if urlsplit(self.health_url).hostname not in _LOOPBACK_HOSTS:
            raise ValueError(f"health_url: must be a loopback URL, got {self.health_url!r}")
        if not self.argv:
            raise ValueError(f"argv: component {self.name!r} has no command")


@dataclass(frozen=True)
class RunningProcess:
    """A started component: its PID, the kernel start time that makes the PID unique, its log."""

    component: Component
    pid: int
    start_ticks: int
    log_path: Path


def spawn(component: Component, log_path: Path, *, die_with_parent: bool) -> RunningProcess:
    """Start `component` in a new session, stdout and stderr appended to `log_path`."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "ab") as log:
        proc = subprocess.Popen(
            component.argv,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=_die_with_parent if die_with_parent else None,
        )
    _CHILDREN[proc.pid] = proc
    ticks = proc_start_ticks(proc.pid)
    return RunningProcess(component, proc.pid, ticks if ticks is not None else -1, log_path)


def wait_healthy(running: RunningProcess, timeout: float) -> None:
    """Poll the health URL until it answers 200; raise StartError on exit or after `timeout`."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not is_running(running):
            raise StartError(_failure(running, f"exited ({_exit_status(running.pid)})"))
        if probe(running.component):
            return
        time.sleep(POLL_SECONDS)
    raise StartError(_failure(running, f"not healthy after {timeout:.0f} s"))


def probe(component: Component) -> bool:
    """One health request: True when the endpoint answers 200."""
    context = None
    if urlsplit(component.health_url).scheme == "https":
        context = ssl.create_default_context(cafile=component.ca_file)
        if component.ca_file is None:
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        if component.client_cert:
            context.load_cert_chain(*component.client_cert)
    opener = urllib.request.build_opener(
        urllib.request.ProxyHandler({}), urllib.request.HTTPSHandler(context=context)
    )
    try:
        with opener.open(component.health_url, timeout=PROBE_TIMEOUT_SECONDS) as response:
            return response.status == 200
    except (urllib.error.URLError, OSError):
        return False


def stop(running: RunningProcess, timeout: float) -> str:
    """SIGTERM, then SIGKILL after `timeout`; returns what happened. Never signals a stranger."""
    if not is_running(running):
        return "not running"
    os.kill(running.pid, signal.SIGTERM)
    if _wait_gone(running, timeout):
        return "stopped"
    if is_running(running):
        os.kill(running.pid, signal.SIGKILL)
        _wait_gone(running, timeout)
    return "killed"


def is_running(running: RunningProcess) -> bool:
    """True while the PID exists, is not a zombie and still has the start time we recorded."""
    _reap(running.pid)
    stat = _read_stat(running.pid)
    return stat is not None and stat[0] != "Z" and stat[1] == running.start_ticks


def proc_start_ticks(pid: int) -> int | None:
    """The process start time in clock ticks since boot (/proc/<pid>/stat field 22)."""
    stat = _read_stat(pid)
    return None if stat is None else stat[1]


def parse_proc_stat(text: str) -> tuple[str, int]:
    """(state, start_ticks) from a /proc/<pid>/stat line; the command name may hold spaces."""
    after_comm = text[text.rindex(")") + 2 :].split()
    # after_comm[0] is field 3 (state); field 22 (starttime) is therefore after_comm[19].
    return after_comm[0], int(after_comm[19])


def rss_bytes(pid: int) -> int | None:
    """Resident set size of `pid` from /proc/<pid>/status, or None if it is gone."""
    try:
        text = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    for line in text.splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return None


def tail(path: Path, lines: int = 40) -> str:
    """The last `lines` lines of a log file ('' when it does not exist yet)."""
    try:
        with open(path, encoding="utf-8", errors="replace") as handle:
            return "".join(deque(handle, maxlen=lines))
    except FileNotFoundError:
        return ""


def _failure(running: RunningProcess, what: str) -> str:
    name = running.component.name
    return f"{name} {what}; last lines of {running.log_path}:\n{tail(running.log_path)}"


def _wait_gone(running: RunningProcess, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not is_running(running):
            return True
        time.sleep(POLL_SECONDS / 2)
    return False


def _reap(pid: int) -> None:
    # Our own children stay zombies until waited for; poll() waits without blocking.
    child = _CHILDREN.get(pid)
    if child is not None:
        child.poll()


def _exit_status(pid: int) -> str:
    """For a child seen gone: it may have turned zombie just after `_reap` polled it, so
    wait for it (briefly: it has exited) before saying its code is unknown."""
    child = _CHILDREN.get(pid)
    if child is not None and child.returncode is None:
        try:
            child.wait(timeout=1)
        except subprocess.TimeoutExpired:
            pass
    if child is None or child.returncode is None:
        return "exit status unknown"
    return f"exit code {child.returncode}"


def _read_stat(pid: int) -> tuple[str, int] | None:
    try:
        return parse_proc_stat(Path(f"/proc/{pid}/stat").read_text())
    except (OSError, ValueError, IndexError):
        return None


def _die_with_parent() -> None:
    # Runs in the child between fork and exec: ask the kernel for SIGTERM when the parent dies,
    # so a killed pytest does not leave an apiserver behind.
    ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
