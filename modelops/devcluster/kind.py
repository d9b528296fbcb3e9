"""kind clusters on this machine, from the node image tools/build-kind.sh makes (nothing pulled).

`quirks_from` reads what kind must work around here from /proc and the cgroup filesystem
(pure; `probe_host` does the reading): an incomplete capability bounding set, which makes Docker
refuse every --privileged container (the kind binary in the bin dir is then a wrapper with a
docker shim, and containerd must not set negative oom_score_adj), and cgroup v1, which kubelet
1.35+ refuses unless told. `cluster_config` turns them into kind's Cluster config (pure): no
default CNI with our image, which carries a bridge conflist instead of kindnetd.
`kind_problems` says why kind cannot run (empty when it can); `network_gateway` reads the
host's address on the kind Docker network, which the pods reach (pure over `docker network
inspect`). `guard_service_range` makes the node refuse packets to a ClusterIP kube-proxy has not
programmed yet (they would otherwise follow the default route off the machine; rules from the
pure `service_guard_rules`). `local_clusters` picks where `make run` and tests/e2e run: kind
wherever it can, the host node only where it cannot (or as $MODELOPS_LOCAL_CLUSTER says). The
cluster itself is made by modelops.devcluster.kind_cluster for `make run` and by pytest-kind in
tests/e2e, with the same binaries, image and config.
"""

from __future__ import annotations

import ipaddress
import json
import shutil
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import yaml

from modelops.contract import ENV_KIND_NODE_IMAGE, ENV_LOCAL_CLUSTER
from modelops.devcluster.binaries import pinned_k8s_version

KIND_BUILD_SCRIPT = Path(__file__).resolve().parents[2] / "tools" / "build-kind.sh"
KIND_BINARIES = ("kind", "kubectl", "kubeadm", "crictl")
LOCAL_IMAGE_PREFIX = "modelops.local/kind-node:"
KIND_NETWORK = "kind"
SERVICE_SUBNET = "10.96.0.0/16"  # kind's default, stated so that the node's guard names it
SYS_RESOURCE = 24  # CAP_SYS_RESOURCE, which this machine's bounding set lacks
RESTRICT_OOM_SCORE_ADJ = ('[plugins."io.containerd.grpc.v1.cri"]\n'
                          '  restrict_oom_score_adj = true')


class KindError(RuntimeError):
    """A kind command failed; the message carries its output."""


@dataclass(frozen=True)
class HostQuirks:
    """What kind has to work around on this host (all False on a usual Docker machine)."""

    privileged_refused: bool  # the bounding set lacks a capability Docker grants --privileged
    cgroup_v1: bool


def quirks_from(proc_status: str, cap_last_cap: int, cgroup_fs_type: str) -> HostQuirks:
    """Quirks from /proc/self/status, /proc/sys/kernel/cap_last_cap and `stat -f` of cgroups."""
    bounding = next((int(line.split()[1], 16) for line in proc_status.splitlines()
                     if line.startswith("CapBnd:")), 0)
    full = (1 << (cap_last_cap + 1)) - 1
    return HostQuirks(privileged_refused=bounding & full != full,
                      cgroup_v1=cgroup_fs_type != "cgroup2fs")


def probe_host() -> HostQuirks:
    fs_type = subprocess.run(["stat", "-fc", "%T", "/sys/fs/cgroup"], capture_output=True,
                             text=True, check=False).stdout.strip()
    return quirks_from(Path("/proc/self/status").read_text(),
                       int(Path("/proc/sys/kernel/cap_last_cap").read_text()), fs_type)


def local_node_image() -> str:
    return LOCAL_IMAGE_PREFIX + pinned_k8s_version()


@dataclass(frozen=True)
class KindSettings:
    """Which node image and binaries; read once from the environment."""

    bin_dir: Path
    node_image: str
    name: str = "modelops"

    @classmethod
    def from_env(cls, bin_dir: Path, env: Mapping[str, str], name: str = "modelops") -> KindSettings:
        return cls(bin_dir, env.get(ENV_KIND_NODE_IMAGE) or local_node_image(), name)

    @property
    def kind(self) -> Path:
        return self.bin_dir / "kind"

    @property
    def own_image(self) -> bool:
        """An image made by tools/build-kind.sh (bridge CNI, no kindnetd)."""
        return self.node_image.startswith(LOCAL_IMAGE_PREFIX)


def cluster_config(quirks: HostQuirks, own_image: bool) -> dict:
    """kind's Cluster config for one node on this host."""
    config: dict = {"kind": "Cluster", "apiVersion": "kind.x-k8s.io/v1alpha4",
                    "networking": {"serviceSubnet": SERVICE_SUBNET}}
    if own_image:
        config["networking"]["disableDefaultCNI"] = True
    if quirks.cgroup_v1:
        config["kubeadmConfigPatches"] = ["kind: KubeletConfiguration\nfailCgroupV1: false\n"]
    if quirks.privileged_refused:
        config["containerdConfigPatches"] = [RESTRICT_OOM_SCORE_ADJ]
    return config


def write_cluster_config(settings: KindSettings, path: Path) -> Path:
    path.write_text(yaml.safe_dump(cluster_config(probe_host(), settings.own_image)))
    return path


def kind_problems(settings: KindSettings) -> list[str]:
    """Why a kind cluster cannot start here (empty when it can); nothing is downloaded."""
    problems = [] if settings.kind.is_file() else [f"no kind binary at {settings.kind}"]
    if not settings.own_image:  # e.g. kindest/node, which kind pulls where a registry answers
        return problems + ([] if shutil.which("docker") else ["no docker CLI"])
    return problems + node_image_problems(settings.node_image)


def node_image_problems(node_image: str) -> list[str]:
    """Why `node_image` cannot be used (no Docker, or not present locally); never pulls."""
    if not shutil.which("docker"):
        return ["no docker CLI"]
    try:
        image = subprocess.run(["docker", "image", "inspect", node_image],
                               capture_output=True, text=True, timeout=60, check=False)
    except subprocess.TimeoutExpired:
        return ["docker image inspect: no answer in 60 s (is dockerd running?)"]
    if image.returncode != 0:
        return [f"node image {node_image} is not present locally (it is never pulled; "
                f"tools/build-kind.sh makes it, or set {ENV_KIND_NODE_IMAGE})"]
    return []


def settings_image_problems(env: Mapping[str, str]) -> list[str]:
    """`node_image_problems` for the node image `env` names, without resolving binaries: a
    cheap first answer to whether kind can run (tests/e2e chooses its flavour with it)."""
    image = env.get(ENV_KIND_NODE_IMAGE) or local_node_image()
    if not image.startswith(LOCAL_IMAGE_PREFIX):
        return [] if shutil.which("docker") else ["no docker CLI"]
    return node_image_problems(image)


LOCAL_CLUSTER_CHOICES = {"kind": ("kind",), "node": ("node",), "both": ("node", "kind")}


def local_clusters(env: Mapping[str, str], kind_problems_found: list[str]) -> tuple[str, ...]:
    """Where the local cluster runs: $MODELOPS_LOCAL_CLUSTER (kind, node, both), or by default
    kind when it can run here and the host node otherwise."""
    wanted = env.get(ENV_LOCAL_CLUSTER, "").strip() or "auto"
    if wanted == "auto":
        return ("node",) if kind_problems_found else ("kind",)
    if wanted not in LOCAL_CLUSTER_CHOICES:
        raise ValueError(f"${ENV_LOCAL_CLUSTER}={wanted!r}: expected auto, kind, node or both")
    return LOCAL_CLUSTER_CHOICES[wanted]


def network_gateway(inspect_json: str) -> str:
    """The IPv4 gateway of a network from `docker network inspect` (the host, seen from it)."""
    networks = json.loads(inspect_json)
    for network in networks:
        for subnet in (network.get("IPAM") or {}).get("Config") or []:
            gateway = subnet.get("Gateway") or ""
            if gateway and ipaddress.ip_address(gateway).version == 4:
                return gateway
    raise KindError(f"no IPv4 gateway in the Docker network: {inspect_json[:200]}")


def host_address() -> str:
    """The host's address that pods of a kind cluster reach (the kind network's gateway)."""
    inspected = subprocess.run(["docker", "network", "inspect", KIND_NETWORK],
                               capture_output=True, text=True, timeout=60, check=False)
    if inspected.returncode != 0:
        raise KindError(f"docker network inspect {KIND_NETWORK}: {inspected.stderr.strip()}")
    return network_gateway(inspected.stdout)


def node_container(cluster_name: str) -> str:
    """The Docker container of a one-node kind cluster."""
    return f"{cluster_name}-control-plane"


def service_guard_rules(subnet: str = SERVICE_SUBNET) -> list[list[str]]:
    """iptables rules (chain first) that refuse what is still addressed to the Service range
    after kube-proxy's DNAT, i.e. a ClusterIP it has not programmed: from the node's own
    processes (OUTPUT) and from its pods (FORWARD). Refused at once, instead of following the
    node's default route out of the machine (seen on CI: a canary's first requests to its new
    Service got empty 404s from the host's gateway)."""
    return [[chain, "-d", subnet, "-j", "REJECT"] for chain in ("OUTPUT", "FORWARD")]


def guard_service_range(container: str) -> None:
    """Insert `service_guard_rules` in the node's filter table unless already there."""
    for chain, *rule in missing_service_guards(container):
        _docker_exec(container, "iptables", "-w", "-I", chain, "1", *rule)


def missing_service_guards(container: str) -> list[list[str]]:
    """The `service_guard_rules` the node's filter table does not hold (`iptables -C`)."""
    return [rule for rule in service_guard_rules()
            if _docker_exec(container, "iptables", "-w", "-C", *rule, check=False).returncode]


def _docker_exec(container: str, *command: str, check: bool = True) -> subprocess.CompletedProcess:
    done = subprocess.run(["docker", "exec", container, *command], capture_output=True,
                          text=True, timeout=60, check=False)
    if check and done.returncode != 0:
        raise KindError(f"docker exec {container} {' '.join(command)}: {done.stderr.strip()}")
    return done
