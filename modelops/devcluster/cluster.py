"""`ControlPlane`: etcd, kube-apiserver, kube-controller-manager and kube-scheduler on loopback.

`start()` makes fresh certificates and a kubeconfig under the work dir, picks free loopback
ports, starts each component in turn and waits (bounded) until it is healthy, recording PIDs and
ports in state.json after every start. `stop()` signals only the processes recorded there (by
PID plus start time). `restart_apiserver()` replaces the apiserver alone, on the same port and
the same etcd. `ControlPlane.attach(work_dir)` rebuilds the object from state.json, which is how
the `down` and `status` commands reach a control plane another process started. I/O throughout.
"""

from __future__ import annotations

import datetime as dt
import os
import shutil
import socket
import subprocess
from dataclasses import dataclass, fields
from pathlib import Path

from modelops.devcluster import components as comp
from modelops.devcluster.kubeconfig import build_kubeconfig, write_kubeconfig
from modelops.devcluster.pki import ADMIN_GROUPS, ClusterPki, issue_client_cert, make_cluster_pki
from modelops.devcluster.process import (
    Component,
    RunningProcess,
    StartError,
    is_running,
    probe,
    rss_bytes,
    spawn,
    stop,
    tail,
    wait_healthy,
)
from modelops.devcluster.state import ClusterState, read_state, write_state

APISERVER = "kube-apiserver"
KUBELET_CLIENT_USER = "kube-apiserver-kubelet-client"  # who the apiserver is to a kubelet


class ControlPlaneError(RuntimeError):
    """The control plane could not be started or reached; the message says which part and why."""


@dataclass(frozen=True)
class ControlPlaneSettings:
    """How to run one control plane."""

    bin_dir: Path
    """Directory holding etcd, kube-apiserver, kube-controller-manager, kube-scheduler."""
    work_dir: Path
    """Certificates, etcd data, logs, kubeconfig and state.json go here."""
    with_controllers: bool = True
    """Also run kube-controller-manager and kube-scheduler."""
    start_timeout: float = 120.0
    """Seconds each component may take to become healthy."""
    stop_timeout: float = 15.0
    """Seconds between SIGTERM and SIGKILL."""
    die_with_parent: bool = False
    """Ask the kernel to stop the processes when this Python process dies (test sessions)."""
    serve_node: bool = False
    """A node will join: see `components.apiserver_component` (listen beyond loopback, kubelet
    client certificate)."""


@dataclass(frozen=True)
class ProcessStatus:
    """One line of `status`."""

    name: str
    pid: int
    running: bool
    healthy: bool
    rss_bytes: int | None


class ControlPlane:
    """One local control plane; see the module docstring."""

    def __init__(self, settings: ControlPlaneSettings) -> None:
        self.settings = settings
        self.layout = comp.Layout(settings.work_dir)
        self.ports: comp.Ports | None = None
        self._running: dict[str, RunningProcess] = {}

    @classmethod
    def attach(cls, work_dir: Path, stop_timeout: float = 15.0) -> ControlPlane:
        """The control plane recorded in `work_dir`/state.json (raises StateError if none)."""
        state = read_state(comp.Layout(work_dir).state_file)
        plane = cls(ControlPlaneSettings(state.bin_dir, work_dir, stop_timeout=stop_timeout))
        plane.ports = state.ports
        plane._running = {p.component.name: p for p in state.processes}
        return plane

    @property
    def kubeconfig(self) -> Path:
        return self.layout.kubeconfig

    @property
    def processes(self) -> tuple[RunningProcess, ...]:
        return tuple(self._running.values())

    def start(self) -> ControlPlane:
        """Start every component from scratch; on failure stop what started and raise."""
        if any(is_running(p) for p in self._running.values()):
            raise ControlPlaneError(f"a control plane is already running in {self.layout.work_dir}")
        self._prepare_work_dir()
        self.ports = comp.Ports(*free_loopback_ports(len(fields(comp.Ports))))
        self._write_credentials(make_cluster_pki(_now(), comp.SERVICE_IP))
        try:
            for component in self._plan(self.ports):
                self._start(component)
        except (StartError, OSError) as failure:
            self.stop()
            raise ControlPlaneError(f"control plane did not start: {failure}") from failure
        return self

    def restart_apiserver(self) -> None:
        """Stop kube-apiserver and start it again with the same flags, port and etcd."""
        old = self._running.get(APISERVER)
        if old is None:
            raise ControlPlaneError(f"{APISERVER} was never started in {self.layout.work_dir}")
        stop(old, self.settings.stop_timeout)
        try:
            self._start(old.component)
        except (StartError, OSError) as failure:
            raise ControlPlaneError(f"{APISERVER} did not restart: {failure}") from failure

    def stop(self) -> dict[str, str]:
        """Stop the recorded processes, last started first; returns name -> what happened."""
        outcomes = {}
        for running in reversed(self.processes):
            outcomes[running.component.name] = stop(running, self.settings.stop_timeout)
        return outcomes

    def status(self) -> list[ProcessStatus]:
        """Liveness, health and memory of every recorded process."""
        rows = []
        for running in self.processes:
            alive = is_running(running)
            rows.append(
                ProcessStatus(
                    name=running.component.name,
                    pid=running.pid,
                    running=alive,
                    healthy=alive and probe(running.component),
                    rss_bytes=rss_bytes(running.pid) if alive else None,
                )
            )
        return rows

    def log_tails(self, lines: int = 40) -> dict[str, str]:
        """The last lines of each component's log, for failure reports."""
        return {p.component.name: tail(p.log_path, lines) for p in self.processes}

    def _plan(self, ports: comp.Ports) -> list[Component]:
        bin_dir, layout = self.settings.bin_dir, self.layout
        plan = [
            comp.etcd_component(bin_dir, layout, ports, no_fsync=_supports_no_fsync(bin_dir)),
            comp.apiserver_component(
                bin_dir,
                layout,
                ports,
                with_controllers=self.settings.with_controllers,
                serve_node=self.settings.serve_node,
            ),
        ]
        if self.settings.with_controllers:
            plan.append(comp.controller_manager_component(bin_dir, layout, ports))
            plan.append(comp.scheduler_component(bin_dir, layout, ports))
        return plan

    def _start(self, component: Component) -> None:
        running = spawn(
            component,
            self.layout.log(component.name),
            die_with_parent=self.settings.die_with_parent,
        )
        self._running[component.name] = running
        self._save_state()
        wait_healthy(running, self.settings.start_timeout)

    def _save_state(self) -> None:
        assert self.ports is not None
        state = ClusterState(self.settings.bin_dir, self.kubeconfig, self.ports, self.processes)
        write_state(self.layout.state_file, state)

    def _prepare_work_dir(self) -> None:
        # Remove only what a previous run of this harness wrote; the work dir may be shared.
        layout = self.layout
        for directory in (layout.etcd_data, layout.pki_dir, layout.logs_dir):
            shutil.rmtree(directory, ignore_errors=True)
        for path in (layout.kubeconfig, layout.state_file):
            path.unlink(missing_ok=True)
        layout.work_dir.mkdir(parents=True, exist_ok=True)
        layout.pki_dir.mkdir(mode=0o700)
        layout.etcd_data.mkdir(mode=0o700)
        self._running = {}

    def _write_credentials(self, pki: ClusterPki) -> None:
        files = {
            "serving-ca.crt": pki.serving_ca.cert_pem,
            "serving-ca.key": pki.serving_ca.key_pem,
            "apiserver.crt": pki.apiserver.cert_pem,
            "apiserver.key": pki.apiserver.key_pem,
            "client-ca.crt": pki.client_ca.cert_pem,
            "client-ca.key": pki.client_ca.key_pem,
            "admin.crt": pki.admin.cert_pem,
            "admin.key": pki.admin.key_pem,
            "sa.key": pki.service_account_key_pem,
            "sa.pub": pki.service_account_public_pem,
        }
        if self.settings.serve_node:
            kubelet_client = issue_client_cert(
                pki.client_ca, KUBELET_CLIENT_USER, ADMIN_GROUPS, _now()
            )
            files["apiserver-kubelet-client.crt"] = kubelet_client.cert_pem
            files["apiserver-kubelet-client.key"] = kubelet_client.key_pem
        for name, pem in files.items():
            _write_private(self.layout.pki(name), pem)
        assert self.ports is not None
        config = build_kubeconfig(self.ports.apiserver_url, pki.serving_ca.cert_pem, pki.admin)
        write_kubeconfig(self.kubeconfig, config)


def free_loopback_ports(count: int) -> list[int]:
    """`count` distinct TCP ports free on 127.0.0.1 (held together so none repeats)."""
    sockets = []
    try:
        for _ in range(count):
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.bind((comp.LOOPBACK, 0))
            sockets.append(sock)
        return [s.getsockname()[1] for s in sockets]
    finally:
        for sock in sockets:
            sock.close()


def _supports_no_fsync(bin_dir: Path) -> bool:
    # envtest's rule: pass --unsafe-no-fsync only when the binary's help lists it.
    result = subprocess.run(
        [str(bin_dir / "etcd"), "--help"], capture_output=True, text=True, timeout=30
    )
    return "--unsafe-no-fsync" in result.stdout + result.stderr


def _write_private(path: Path, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)
