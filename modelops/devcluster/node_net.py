"""The node's footprint on the host: the bridge, a route, guard rules, mounts. I/O (pure helpers).

`setup_network` makes the bridge with the node IP before any pod exists (the kubelet needs its
address at start; the CNI bridge plugin adopts the bridge), routes the Service range into the
bridge (a ClusterIP that kube-proxy has not programmed yet then stays on this host instead of
following the default route), and installs two chains: a pod's packet to such a ClusterIP is
refused at once, pods reach each other and the host but nothing past the bridge, and only
loopback and the bridge reach the node IP and the apiserver's port. `host_problems` says
beforehand why a node cannot run here at all. `teardown_network` removes all of it plus what
the kubelet leaves in iptables, and `unmount_under` the volume mounts a stopped kubelet leaves
behind; both are safe to run twice. `guard_rules` and `mounts_under` are pure.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

from modelops.devcluster.components import SERVICE_CIDR
from modelops.devcluster.node_config import BRIDGE, CNI_BIN_DIR, NODE_IP, NODE_PREFIX
from modelops.devcluster.node_plan import HOST_COMMANDS, NODE_BINARIES

FORWARD_CHAIN = "MODELOPS-NODE-FWD"
INPUT_CHAIN = "MODELOPS-NODE-IN"
HOOKS = {FORWARD_CHAIN: "FORWARD", INPUT_CHAIN: "INPUT"}
# Chains the kubelet creates (table, chain, hooks that jump to it); kube-proxy --cleanup
# leaves them.
KUBELET_CHAINS = (
    ("filter", "KUBE-FIREWALL", ("INPUT", "OUTPUT")),
    ("filter", "KUBE-KUBELET-CANARY", ()),
    ("nat", "KUBE-KUBELET-CANARY", ()),
    ("mangle", "KUBE-KUBELET-CANARY", ()),
    ("mangle", "KUBE-IPTABLES-HINT", ()),
)
CNI_PLUGINS = ("bridge", "host-local", "portmap", "loopback")
REQUIRED_SYSCTLS = {"net/ipv4/ip_forward": "1", "net/bridge/bridge-nf-call-iptables": "1"}
COMMAND_TIMEOUT = 30.0


class NetworkError(RuntimeError):
    """A host network change failed; the message has the command and what it printed."""


def guard_rules(apiserver_port: int) -> dict[str, list[list[str]]]:
    """The rules of each guard chain, in order (iptables arguments after `-A CHAIN`)."""
    return {
        FORWARD_CHAIN: [
            # after kube-proxy's DNAT: a ClusterIP it has not programmed yet is refused at once
            ["-d", SERVICE_CIDR, "-j", "REJECT"],
            ["-i", BRIDGE, "-o", BRIDGE, "-j", "ACCEPT"],  # pod to pod, also via a Service
            ["-i", BRIDGE, "-j", "REJECT"],  # pods never leave the node
            ["-o", BRIDGE, "-j", "REJECT"],  # nothing from another interface reaches a pod
        ],
        INPUT_CHAIN: [
            ["-i", "lo", "-j", "RETURN"],
            ["-i", BRIDGE, "-j", "RETURN"],
            ["-d", NODE_IP, "-j", "DROP"],
            ["-p", "tcp", "--dport", str(apiserver_port), "-j", "DROP"],
        ],
    }


def sysctl_problems(proc_sys: Path = Path("/proc/sys")) -> list[str]:
    """Kernel settings the node needs but does not have, after trying to set them."""
    problems = []
    for key, wanted in REQUIRED_SYSCTLS.items():
        path = proc_sys / key
        try:
            if path.read_text().strip() != wanted:
                path.write_text(wanted)
        except OSError as error:
            problems.append(f"{key.replace('/', '.')} must be {wanted}: {error}")
    return problems


def host_problems(bin_dir: Path) -> list[str]:
    """Why a node cannot run on this host (empty when it can); nothing is started."""
    problems = [] if os.geteuid() == 0 else ["the node needs root (bridge, iptables, mounts)"]
    problems += [f"{c} not found on PATH" for c in HOST_COMMANDS if not shutil.which(c)]
    problems += [f"CNI plugin {CNI_BIN_DIR / p} is missing (apt-get install "
                 f"containernetworking-plugins)" for p in CNI_PLUGINS
                 if not (CNI_BIN_DIR / p).is_file()]
    problems += [f"{bin_dir / b} is missing (run tools/node/build.sh)"
                 for b in NODE_BINARIES if not os.access(bin_dir / b, os.X_OK)]
    if not Path("/sys/fs/cgroup").is_dir():
        problems.append("no cgroup filesystem at /sys/fs/cgroup")
    docker = subprocess.run(["docker", "info"], capture_output=True, text=True, timeout=60) \
        if shutil.which("docker") else None
    if docker is None or docker.returncode != 0:
        problems.append("no Docker engine answers `docker info` (it builds the pause image)")
    return problems + (sysctl_problems() if os.geteuid() == 0 else [])


def setup_network(apiserver_port: int) -> None:
    """Bridge with the node IP, the Service route and the guard chains (replacing old ones)."""
    teardown_guards()
    if not Path(f"/sys/class/net/{BRIDGE}").exists():
        _run("ip", "link", "add", BRIDGE, "type", "bridge")
    _run("ip", "addr", "replace", f"{NODE_IP}/{NODE_PREFIX}", "dev", BRIDGE)
    _run("ip", "link", "set", BRIDGE, "up")
    _run("ip", "route", "replace", SERVICE_CIDR, "dev", BRIDGE)
    for chain, rules in guard_rules(apiserver_port).items():
        _run("iptables", "-w", "-N", chain)
        for rule in rules:
            _run("iptables", "-w", "-A", chain, *rule)
        _run("iptables", "-w", "-I", HOOKS[chain], "1", "-j", chain)


def teardown_guards() -> None:
    """Remove the guard chains and their jumps, if present."""
    for chain, hook in HOOKS.items():
        while _try("iptables", "-w", "-D", hook, "-j", chain):
            pass
        _try("iptables", "-w", "-F", chain)
        _try("iptables", "-w", "-X", chain)


def teardown_network() -> None:
    """Undo `setup_network` and remove the kubelet's chains (IPv4 and IPv6)."""
    teardown_guards()
    for binary in ("iptables", "ip6tables"):
        for table, chain, hooks in KUBELET_CHAINS:
            for hook in hooks:
                while _try(binary, "-w", "-t", table, "-D", hook, "-j", chain):
                    pass
            _try(binary, "-w", "-t", table, "-F", chain)
            _try(binary, "-w", "-t", table, "-X", chain)
    if Path(f"/sys/class/net/{BRIDGE}").exists():
        _run("ip", "link", "del", BRIDGE)  # takes the Service route with it


def mounts_under(mountinfo: str, directory: Path) -> list[Path]:
    """Mount points below `directory` in a /proc/self/mountinfo text, deepest first."""
    root = str(directory).rstrip("/") + "/"
    found = []
    for line in mountinfo.splitlines():
        fields = line.split(" ")
        if len(fields) < 5:
            continue
        point = _unescape(fields[4])
        if point.startswith(root):
            found.append(Path(point))
    return sorted(set(found), key=lambda p: (len(p.parts), str(p)), reverse=True)


def unmount_under(directory: Path) -> list[Path]:
    """Lazily unmount everything mounted below `directory`; returns what was unmounted."""
    points = mounts_under(Path("/proc/self/mountinfo").read_text(), directory)
    for point in points:
        _try("umount", "--lazy", str(point))
    return points


def _unescape(field: str) -> str:
    # mountinfo escapes space, tab, newline and backslash as \ooo octal.
    return field.encode().decode("unicode_escape") if "\\" in field else field


def _run(*argv: str) -> None:
    result = subprocess.run(argv, capture_output=True, text=True, timeout=COMMAND_TIMEOUT)
    if result.returncode != 0:
        output = (result.stderr or result.stdout).strip()
        raise NetworkError(f"{' '.join(argv)} exited with code {result.returncode}: {output}")


def _try(*argv: str) -> bool:
    result = subprocess.run(argv, capture_output=True, text=True, timeout=COMMAND_TIMEOUT)
    return result.returncode == 0
