"""The dev node's addresses, files and configuration documents. Pure.

One node, `modelops-node`, whose pods sit on the bridge `modelops0` (10.244.0.0/24, host-local
IPAM). The bridge's own address, 10.244.0.1, is the node IP: the kubelet serves there, CoreDNS
answers there, and pods reach the apiserver there through the `kubernetes` Service. Nothing
routes out of the node: the bridge does no masquerading and the guard rules in `node_net` drop
anything a pod sends past the bridge. `NodeLayout` names every file under the node's dir; the
builders turn layout, ports and settings into containerd's TOML, the CNI conflist, the kubelet
and kube-proxy configs (dicts for YAML) and the Corefile (text).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

NODE_NAME = "modelops-node"
BRIDGE = "modelops0"
POD_CIDR = "10.244.0.0/24"
NODE_IP = "10.244.0.1"  # the bridge's address: pods' gateway and the node's InternalIP
NODE_PREFIX = 24
CLUSTER_DNS_IP = "10.0.0.10"  # inside components.SERVICE_CIDR, in its statically allocated band
CLUSTER_DOMAIN = "cluster.local"
PAUSE_IMAGE = "modelops/pause:3.10"
CNI_BIN_DIR = Path("/usr/lib/cni")  # Debian's containernetworking-plugins
CNI_NETWORK = "modelops"
# A unix socket path longer than this cannot be bound (sun_path is 108 bytes with the NUL).
MAX_SOCKET_PATH = 107


@dataclass(frozen=True)
class NodeLayout:
    """Every file the node writes, under one dir (the control plane's work dir + /node)."""

    node_dir: Path
    store_dir: Path | None = None
    """containerd's image store when kept elsewhere (tests share one across runs)."""

    def path(self, *parts: str) -> Path:
        return self.node_dir.joinpath(*parts)

    @property
    def containerd_socket(self) -> Path:
        return self.path("run", "containerd.sock")

    @property
    def containerd_root(self) -> Path:
        """Images and snapshots: kept across `down`/`up`, so a warm start imports nothing."""
        return self.store_dir or self.path("containerd")

    @property
    def runtime_dirs(self) -> tuple[Path, ...]:
        """What a fresh start wipes: the kubelet's dir, configs, certificates, logs.

        containerd's state (run/) and the IP leases (cni/) stay: should a pod have survived a
        `down`, containerd reconnects to its shim and the kubelet tears it down properly.
        """
        return tuple(self.path(p) for p in ("kubelet", "etc", "pki", "logs"))

    @property
    def kubelet_root(self) -> Path:
        return self.path("kubelet")

    @property
    def cni_conf_dir(self) -> Path:
        return self.path("cni", "net.d")

    @property
    def ipam_dir(self) -> Path:
        return self.path("cni", "networks")

    @property
    def state_file(self) -> Path:
        return self.path("node.json")

    def config(self, name: str) -> Path:
        return self.path("etc", name)

    def pki(self, name: str) -> Path:
        return self.path("pki", name)

    def log(self, component: str) -> Path:
        return self.path("logs", f"{component}.log")


@dataclass(frozen=True)
class NodePorts:
    """Ports of the node's processes: health endpoints on loopback, servers on the node IP."""

    containerd_metrics: int
    kubelet: int
    kubelet_healthz: int
    proxy_healthz: int
    proxy_metrics: int
    dns: int
    dns_health: int
    dns_ready: int


def containerd_config(layout: NodeLayout, ports: NodePorts, pause_image: str) -> str:
    """containerd's config.toml: its own root, state and socket, so it never meets Docker's."""
    disabled = [
        "io.containerd.internal.v1.opt",  # would write /opt/containerd
        "io.containerd.snapshotter.v1.aufs",
        "io.containerd.snapshotter.v1.btrfs",
        "io.containerd.snapshotter.v1.devmapper",
        "io.containerd.snapshotter.v1.zfs",
        "io.containerd.tracing.processor.v1.otlp",
    ]
    socket = str(layout.containerd_socket)
    lines = [
        "version = 2",
        f"root = {_toml(layout.containerd_root)}",
        f"state = {_toml(layout.path('run', 'state'))}",
        f"disabled_plugins = {json.dumps(disabled)}",
        "[grpc]",
        f"  address = {_toml(socket)}",
        "[ttrpc]",
        f"  address = {_toml(socket + '.ttrpc')}",
        "[metrics]",
        f'  address = "127.0.0.1:{ports.containerd_metrics}"',
        '[plugins."io.containerd.grpc.v1.cri"]',
        f"  sandbox_image = {_toml(pause_image)}",
        '  stream_server_address = "127.0.0.1"',
        # Without CAP_SYS_RESOURCE (sandboxes like this one) runc cannot lower oom_score_adj
        # to the -998 the CRI plugin asks for the sandbox; clamp at containerd's own value.
        "  restrict_oom_score_adj = true",
        '[plugins."io.containerd.grpc.v1.cri".containerd]',
        '  snapshotter = "overlayfs"',
        '  default_runtime_name = "runc"',
        '[plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]',
        '  runtime_type = "io.containerd.runc.v2"',
        '[plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]',
        "  SystemdCgroup = false",
        '[plugins."io.containerd.grpc.v1.cri".cni]',
        f"  bin_dir = {_toml(CNI_BIN_DIR)}",
        f"  conf_dir = {_toml(layout.cni_conf_dir)}",
    ]
    return "\n".join(lines) + "\n"


def cni_conflist(layout: NodeLayout) -> dict[str, Any]:
    """The pod network: a bridge with host-local IPAM (leases under the node dir) and portmap."""
    return {
        "cniVersion": "1.0.0",
        "name": CNI_NETWORK,
        "plugins": [
            {
                "type": "bridge",
                "bridge": BRIDGE,
                "isGateway": True,
                "isDefaultGateway": True,
                "ipMasq": False,  # pods have nowhere to go but this node
                "hairpinMode": True,  # a pod reaching itself through its own Service
                "ipam": {
                    "type": "host-local",
                    "ranges": [[{"subnet": POD_CIDR, "gateway": NODE_IP}]],
                    "dataDir": str(layout.ipam_dir),
                },
            },
            {"type": "portmap", "capabilities": {"portMappings": True}},
        ],
    }


def kubelet_config(layout: NodeLayout, ports: NodePorts, client_ca: Path) -> dict[str, Any]:
    """KubeletConfiguration for this sandbox: cgroupfs on cgroup v1, no swap check, no GC."""
    return {
        "apiVersion": "kubelet.config.k8s.io/v1beta1",
        "kind": "KubeletConfiguration",
        "address": NODE_IP,
        "port": ports.kubelet,
        "readOnlyPort": 0,
        "healthzBindAddress": "127.0.0.1",
        "healthzPort": ports.kubelet_healthz,
        "authentication": {
            "anonymous": {"enabled": False},
            "webhook": {"enabled": True},
            "x509": {"clientCAFile": str(client_ca)},
        },
        "authorization": {"mode": "Webhook"},
        "containerRuntimeEndpoint": f"unix://{layout.containerd_socket}",
        "cgroupDriver": "cgroupfs",
        "failCgroupV1": False,  # hosts like this one still mount cgroup v1
        "failSwapOn": False,
        "clusterDNS": [CLUSTER_DNS_IP],
        "clusterDomain": CLUSTER_DOMAIN,
        "resolvConf": "",  # pods learn no host resolver: cluster names only
        "staticPodPath": "",
        "serializeImagePulls": False,
        # Images are imported, never pulled: garbage-collecting them would break the next pod.
        "imageGCHighThresholdPercent": 100,
        "imageGCLowThresholdPercent": 99,
        "evictionHard": {
            "memory.available": "100Mi",
            "nodefs.available": "1%",
            "nodefs.inodesFree": "1%",
            "imagefs.available": "1%",
        },
        "shutdownGracePeriod": "0s",
        "oomScoreAdj": 0,  # -999 needs CAP_SYS_RESOURCE, which a sandbox may withhold
        "rotateCertificates": False,
    }


def proxy_config(kubeconfig: Path, ports: NodePorts) -> dict[str, Any]:
    """KubeProxyConfiguration: iptables mode, leaving the host's conntrack sysctls alone."""
    return {
        "apiVersion": "kubeproxy.config.k8s.io/v1alpha1",
        "kind": "KubeProxyConfiguration",
        "clientConnection": {"kubeconfig": str(kubeconfig)},
        "mode": "iptables",
        "clusterCIDR": POD_CIDR,
        "hostnameOverride": NODE_NAME,
        "healthzBindAddress": f"127.0.0.1:{ports.proxy_healthz}",
        "metricsBindAddress": f"127.0.0.1:{ports.proxy_metrics}",
        "nodePortAddresses": [f"{NODE_IP}/32"],
        "conntrack": {
            "maxPerCore": 0,
            "min": 0,
            "tcpEstablishedTimeout": "0s",
            "tcpCloseWaitTimeout": "0s",
        },
        "iptables": {"localhostNodePorts": False, "minSyncPeriod": "1s"},
        "oomScoreAdj": 0,
    }


def corefile(kubeconfig: Path, context: str, ports: NodePorts) -> str:
    """CoreDNS serving cluster.local (and reverse zones) from the API, on the node IP only."""
    return f"""\
.:{ports.dns} {{
    bind {NODE_IP}
    errors
    health 127.0.0.1:{ports.dns_health}
    ready 127.0.0.1:{ports.dns_ready}
    kubernetes {CLUSTER_DOMAIN} in-addr.arpa ip6.arpa {{
        kubeconfig {kubeconfig} {context}
        pods insecure
        ttl 5
    }}
    cache 5
}}
"""


def socket_path_problem(layout: NodeLayout) -> str | None:
    """Why containerd could not bind its socket under this dir, or None."""
    socket = str(layout.containerd_socket) + ".ttrpc"
    if len(socket.encode()) > MAX_SOCKET_PATH:
        return (
            f"node dir {layout.node_dir}: the containerd socket path {socket} is longer than "
            f"{MAX_SOCKET_PATH} bytes; use a shorter work dir"
        )
    return None


def _toml(value: object) -> str:
    # A TOML basic string has JSON's escaping for everything a path can hold.
    return json.dumps(str(value))
