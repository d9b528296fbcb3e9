"""`Node`: one Kubernetes node on this host (containerd, kubelet, kube-proxy, CoreDNS), joined to
a `ControlPlane` started with `serve_node=True`, the way "Kubernetes the hard way" assembles one.

`start(plane)` checks the host (`node_problems`), wipes the node's runtime dirs (containerd's
image store stays, so a warm start imports nothing), writes client certificates, kubeconfigs and
configs, sets up the host network (`node_net`), applies the RBAC and DNS objects, builds and
imports the pause image, then starts containerd, the kubelet (waiting for the Node to be Ready),
kube-proxy and CoreDNS, recording each in node.json. `stop()` stops the kubelet, tears every pod
down through CRI (node-cri-reset: CNI DEL per pod), stops the rest and removes kube-proxy's
rules, the bridge, the guard chains and leftover mounts. `Node.attach(node_dir)` rebuilds the
object from node.json for `down` and `status`. One node per host: /run/modelops-dev-node names
the dir of the node that holds the bridge. I/O throughout.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import subprocess
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import yaml

from modelops.contract import DEV_CONTEXT
from modelops.devcluster import node_config as cfg
from modelops.devcluster import node_net as net
from modelops.devcluster import node_plan as plan
from modelops.devcluster.access import ClusterAccess, KubectlError
from modelops.devcluster.cluster import ControlPlane, ProcessStatus, free_loopback_ports
from modelops.devcluster.kubeconfig import build_kubeconfig, write_kubeconfig
from modelops.devcluster.node_images import ImageError, build_pause_image, ensure_imported
from modelops.devcluster.pki import KeyPair, issue_client_cert
from modelops.devcluster.node_net import host_problems as node_problems
from modelops.devcluster.process import (
    RunningProcess, StartError, is_running, probe, rss_bytes, spawn, stop, tail, wait_healthy,
)
from modelops.devcluster.state import StateError, decode_process, encode_process

LOCK_FILE = Path("/run/modelops-dev-node")
NODE_DIRNAME = "node"  # the node's dir under the cluster's work dir
NODE_BUILD_SCRIPT = Path(__file__).resolve().parents[2] / "tools" / "node" / "build.sh"
STATE_VERSION = 1
RESET_TIMEOUT = 60.0
RESET_ATTEMPTS = 3


class NodeError(RuntimeError):
    """The node could not start or be reached; the message says which part and why."""


class NodeBusyError(NodeError):
    """Another dev node holds this host (its bridge, its iptables chains)."""


@dataclass(frozen=True)
class NodeSettings:
    """How to run the node."""

    bin_dir: Path
    """kubelet, kube-proxy, coredns, pause, node-cri-reset (tools/node/build.sh fills it)."""
    node_dir: Path
    """Configs, certificates, containerd's store, the kubelet's dir, logs and node.json."""
    start_timeout: float = 180.0
    """Seconds each process (and the Node's Ready condition) may take."""
    stop_timeout: float = 20.0
    """Seconds between SIGTERM and SIGKILL."""
    die_with_parent: bool = False
    """Ask the kernel to stop the processes when this Python process dies (test sessions)."""
    store_dir: Path | None = None
    """containerd's image store, if not node_dir/containerd (one node at a time may use it)."""


class Node:
    """One dev node; see the module docstring."""

    def __init__(self, settings: NodeSettings) -> None:
        self.settings = settings
        self.layout = cfg.NodeLayout(settings.node_dir, settings.store_dir)
        self.ports: cfg.NodePorts | None = None
        self.apiserver_port = 0
        self._running: dict[str, RunningProcess] = {}

    @classmethod
    def attach(cls, node_dir: Path) -> Node:
        """The node recorded in `node_dir`/node.json (StateError if none)."""
        path = cfg.NodeLayout(node_dir).state_file
        try:
            data = json.loads(path.read_text())
            node = cls(NodeSettings(Path(data["bin_dir"]), node_dir))
            node.ports = cfg.NodePorts(**data["ports"])
            node.apiserver_port = int(data["apiserver_port"])
            node._running = {p.component.name: p for p in map(decode_process, data["processes"])}
        except FileNotFoundError:
            raise StateError(f"{path}: no node was started here") from None
        except (KeyError, TypeError, ValueError) as bad:
            raise StateError(f"{path}: damaged ({bad!r})") from None
        return node

    @property
    def processes(self) -> tuple[RunningProcess, ...]:
        return tuple(self._running.values())

    def start(self, control_plane: ControlPlane) -> Node:
        """Join `control_plane`; on failure stop what started, clean up and raise NodeError."""
        problems = node_problems(self.settings.bin_dir) + _socket_problems(self.layout)
        if problems:
            raise NodeError("the node cannot run here: " + "; ".join(problems))
        self._take_host()
        assert control_plane.ports is not None
        self.apiserver_port = control_plane.ports.apiserver
        try:
            self._prepare(control_plane)
            self._start_processes(control_plane)
        except (StartError, OSError, KubectlError, ImageError, net.NetworkError,
                subprocess.TimeoutExpired) as failure:
            self.stop()
            raise NodeError(f"the node did not start: {failure}") from failure
        return self

    def stop(self) -> dict[str, str]:
        """Stop everything in reverse, resetting pods through CRI; returns name -> outcome."""
        outcomes = {}
        timeout = self.settings.stop_timeout
        kubelet = self._running.get(plan.KUBELET)
        if kubelet is not None:
            outcomes[plan.KUBELET] = stop(kubelet, timeout)
        outcomes["pods"] = self._reset_pods()
        for running in reversed(self.processes):
            if running.component.name != plan.KUBELET:
                outcomes[running.component.name] = stop(running, timeout)
        outcomes["network"] = self._clean_host()
        return outcomes

    def status(self) -> list[ProcessStatus]:
        """Liveness, health and memory of every recorded process."""
        rows = []
        for running in self.processes:
            alive = is_running(running)
            rows.append(ProcessStatus(running.component.name, running.pid, alive,
                                      alive and probe(running.component),
                                      rss_bytes(running.pid) if alive else None))
        return rows

    def log_tails(self, lines: int = 40) -> dict[str, str]:
        return {p.component.name: tail(p.log_path, lines) for p in self.processes}

    def _prepare(self, control_plane: ControlPlane) -> None:
        layout = self.layout
        net.unmount_under(layout.node_dir)
        for directory in layout.runtime_dirs:
            shutil.rmtree(directory, ignore_errors=True)
        for directory in (layout.cni_conf_dir, layout.path("etc"), layout.path("pki"),
                          layout.path("run")):
            directory.mkdir(parents=True, exist_ok=True)
        layout.state_file.unlink(missing_ok=True)
        self._running = {}
        self.ports = cfg.NodePorts(*free_loopback_ports(len(cfg.NodePorts.__dataclass_fields__)))
        self._write_files(self._write_kubeconfigs(control_plane), control_plane)
        build_pause_image(self.settings.bin_dir, cfg.PAUSE_IMAGE)
        net.setup_network(self.apiserver_port)
        objects = plan.cluster_objects(self.ports, self.apiserver_port)
        _access(control_plane).kubectl(
            "apply", "-f", "-", input=json.dumps({"apiVersion": "v1", "kind": "List",
                                                  "items": objects}))

    def _start_processes(self, control_plane: ControlPlane) -> None:
        kubeconfigs = self._kubeconfig_paths()
        assert self.ports is not None
        components = plan.node_components(self.settings.bin_dir, self.layout, self.ports,
                                          kubeconfigs)
        for component in components:
            self._start(component)
            if component.name == plan.CONTAINERD:
                ensure_imported(self.layout.containerd_socket, [cfg.PAUSE_IMAGE])
            if component.name == plan.KUBELET:
                self._wait_node_ready(control_plane)

    def _start(self, component) -> None:
        running = spawn(component, self.layout.log(component.name),
                        die_with_parent=self.settings.die_with_parent)
        self._running[component.name] = running
        self._save_state()
        wait_healthy(running, self.settings.start_timeout)

    def _wait_node_ready(self, control_plane: ControlPlane) -> None:
        kubelet = self._running[plan.KUBELET]
        deadline = time.monotonic() + self.settings.start_timeout
        query = '{.status.conditions[?(@.type=="Ready")].status}'
        while time.monotonic() < deadline:
            if not is_running(kubelet):
                raise StartError(f"kubelet exited; see {kubelet.log_path}:\n"
                                 f"{tail(kubelet.log_path)}")
            got = _access(control_plane).kubectl(
                "get", "node", cfg.NODE_NAME, "-o", f"jsonpath={query}", check=False)
            if got.stdout.strip() == "True":
                return
            time.sleep(0.5)
        raise StartError(f"node {cfg.NODE_NAME} not Ready after {self.settings.start_timeout:.0f}"
                         f" s; last lines of {kubelet.log_path}:\n{tail(kubelet.log_path)}")

    def _write_kubeconfigs(self, control_plane: ControlPlane) -> plan.NodeKubeconfigs:
        pki, now = control_plane.layout, dt.datetime.now(dt.UTC)
        client_ca = KeyPair(pki.pki("client-ca.crt").read_bytes(),
                            pki.pki("client-ca.key").read_bytes())
        serving_ca = pki.pki("serving-ca.crt").read_bytes()
        assert control_plane.ports is not None
        paths = self._kubeconfig_paths()
        for path, user, groups in ((paths.kubelet, plan.NODE_USER, (plan.NODE_GROUP,)),
                                   (paths.kube_proxy, plan.PROXY_USER, ()),
                                   (paths.coredns, plan.COREDNS_USER, ())):
            pair = issue_client_cert(client_ca, user, groups, now)
            write_kubeconfig(path, build_kubeconfig(control_plane.ports.apiserver_url,
                                                    serving_ca, pair))
        return paths

    def _write_files(self, kubeconfigs: plan.NodeKubeconfigs, control_plane: ControlPlane) -> None:
        layout, ports = self.layout, self.ports
        assert ports is not None
        client_ca = control_plane.layout.pki("client-ca.crt")
        files = {
            layout.config("containerd.toml"): cfg.containerd_config(layout, ports,
                                                                    cfg.PAUSE_IMAGE),
            layout.cni_conf_dir / f"10-{cfg.CNI_NETWORK}.conflist":
                json.dumps(cfg.cni_conflist(layout), indent=2),
            layout.config("kubelet.yaml"): yaml.safe_dump(
                cfg.kubelet_config(layout, ports, client_ca)),
            layout.config("kube-proxy.yaml"): yaml.safe_dump(
                cfg.proxy_config(kubeconfigs.kube_proxy, ports)),
            layout.config("Corefile"): cfg.corefile(kubeconfigs.coredns, DEV_CONTEXT, ports),
        }
        for path, text in files.items():
            path.write_text(text)

    def _kubeconfig_paths(self) -> plan.NodeKubeconfigs:
        c = self.layout.config
        return plan.NodeKubeconfigs(c("kubelet.kubeconfig"), c("kube-proxy.kubeconfig"),
                                    c("coredns.kubeconfig"))

    def _reset_pods(self) -> str:
        containerd = self._running.get(plan.CONTAINERD)
        if containerd is None or not is_running(containerd):
            return "containerd not running; no pods to reset"
        # A sandbox the kubelet was still creating when it stopped may refuse the first round.
        for attempt in range(RESET_ATTEMPTS):
            result = subprocess.run(
                [str(self.settings.bin_dir / "node-cri-reset"),
                 f"-endpoint=unix://{self.layout.containerd_socket}",
                 f"-timeout={RESET_TIMEOUT:.0f}s"],
                capture_output=True, text=True, timeout=RESET_TIMEOUT + 30)
            if result.returncode == 0:
                break
            time.sleep(2)
        lines = (result.stdout + result.stderr).strip().splitlines()
        return lines[-1] if lines else f"node-cri-reset exited with code {result.returncode}"

    def _clean_host(self) -> str:
        owner = _lock_owner()
        if owner is not None and owner != self.layout.node_dir:
            return f"host network left alone: it belongs to the node in {owner}"
        proxy = subprocess.run([str(self.settings.bin_dir / plan.KUBE_PROXY), "--cleanup"],
                               capture_output=True, text=True, timeout=120)
        net.teardown_network()
        unmounted = net.unmount_under(self.layout.node_dir)
        LOCK_FILE.unlink(missing_ok=True)
        kept = "" if proxy.returncode == 0 else f"; kube-proxy --cleanup: {proxy.stderr[-300:]}"
        return f"bridge and rules removed, {len(unmounted)} mounts released{kept}"

    def _take_host(self) -> None:
        owner = _lock_owner()
        if owner is not None and owner != self.layout.node_dir:
            try:
                other = Node.attach(owner)
            except StateError:
                other = None
            if other is not None and any(is_running(p) for p in other.processes):
                raise NodeBusyError(f"another dev node runs on this host (dir {owner}); stop it with "
                                f"`python -m modelops.devcluster down --dir {owner.parent}`")
        LOCK_FILE.write_text(str(self.layout.node_dir))

    def _save_state(self) -> None:
        assert self.ports is not None
        data = {"version": STATE_VERSION, "bin_dir": str(self.settings.bin_dir),
                "apiserver_port": self.apiserver_port, "ports": asdict(self.ports),
                "processes": [encode_process(p) for p in self.processes]}
        tmp = self.layout.state_file.with_name(".node.json.tmp")
        tmp.write_text(json.dumps(data, indent=2) + "\n")
        os.replace(tmp, self.layout.state_file)


def _access(control_plane: ControlPlane) -> ClusterAccess:
    return ClusterAccess(control_plane.kubeconfig, control_plane.settings.bin_dir)


def _lock_owner() -> Path | None:
    try:
        return Path(LOCK_FILE.read_text().strip())
    except OSError:
        return None


def _socket_problems(layout: cfg.NodeLayout) -> list[str]:
    problem = cfg.socket_path_problem(layout)
    return [problem] if problem else []
