"""The dev node's processes and the API objects it needs, from layout, ports and paths. Pure.

`node_components` returns containerd, kubelet, kube-proxy and CoreDNS as `Component`s, in start
order, each with a loopback health URL. `cluster_objects` returns what the control plane must
hold for the node to work: RBAC for the kubelet (the `system:node` role, since the apiserver
runs RBAC alone) and for CoreDNS, the `kube-dns` Service at the cluster DNS IP, and
EndpointSlices that point `kube-dns` and `kubernetes` at host processes on the node IP (the
apiserver runs no endpoint reconciler, and CoreDNS is a host process, not a pod).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from modelops.devcluster.node_config import (
    CLUSTER_DNS_IP,
    NODE_IP,
    NODE_NAME,
    NodeLayout,
    NodePorts,
)
from modelops.devcluster.process import Component

CONTAINERD = "containerd"
KUBELET = "kubelet"
KUBE_PROXY = "kube-proxy"
COREDNS = "coredns"
NODE_BINARIES = (KUBELET, KUBE_PROXY, COREDNS, "pause", "node-cri-reset")
# Host packages the node runs as they are (Debian: containerd, runc, iptables, iproute2).
HOST_COMMANDS = ("containerd", "ctr", "runc", "iptables", "ip")
MANAGED_BY = "modelops-devcluster"  # EndpointSlices this harness writes by hand
NODE_USER = f"system:node:{NODE_NAME}"
NODE_GROUP = "system:nodes"
PROXY_USER = "system:kube-proxy"  # bound to system:node-proxier by the default RBAC policy
COREDNS_USER = "system:coredns"
RBAC_PREFIX = "modelops-dev:"


@dataclass(frozen=True)
class NodeKubeconfigs:
    """One kubeconfig per client identity."""

    kubelet: Path
    kube_proxy: Path
    coredns: Path


def node_components(
    bin_dir: Path, layout: NodeLayout, ports: NodePorts, kubeconfigs: NodeKubeconfigs
) -> list[Component]:
    """containerd, kubelet, kube-proxy and CoreDNS, in the order they must start."""
    return [
        Component(
            CONTAINERD,
            ("containerd", f"--config={layout.config('containerd.toml')}"),
            f"http://127.0.0.1:{ports.containerd_metrics}/v1/metrics",
        ),
        Component(
            KUBELET,
            (
                str(bin_dir / KUBELET),
                f"--config={layout.config('kubelet.yaml')}",
                f"--kubeconfig={kubeconfigs.kubelet}",
                f"--root-dir={layout.kubelet_root}",
                f"--cert-dir={layout.pki('kubelet')}",
                f"--hostname-override={NODE_NAME}",
                f"--node-ip={NODE_IP}",
            ),
            f"http://127.0.0.1:{ports.kubelet_healthz}/healthz",
        ),
        Component(
            KUBE_PROXY,
            (str(bin_dir / KUBE_PROXY), f"--config={layout.config('kube-proxy.yaml')}"),
            f"http://127.0.0.1:{ports.proxy_healthz}/healthz",
        ),
        Component(
            COREDNS,
            (str(bin_dir / COREDNS), "-conf", str(layout.config("Corefile"))),
            # /ready answers 200 once the kubernetes plugin has synced with the API.
            f"http://127.0.0.1:{ports.dns_ready}/ready",
        ),
    ]


def cluster_objects(ports: NodePorts, apiserver_port: int) -> list[dict[str, Any]]:
    """RBAC, the kube-dns Service and the host EndpointSlices, ready for `kubectl apply`."""
    dns_ports = [("dns", "UDP"), ("dns-tcp", "TCP")]
    return [
        _binding("nodes", "system:node", {"kind": "Group", "name": NODE_GROUP}),
        _coredns_role(),
        _binding("coredns", f"{RBAC_PREFIX}coredns", {"kind": "User", "name": COREDNS_USER}),
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": "kube-dns", "namespace": "kube-system",
                         "labels": {"k8s-app": "kube-dns"}},
            "spec": {
                "clusterIP": CLUSTER_DNS_IP,
                "ports": [
                    {"name": name, "port": 53, "protocol": proto, "targetPort": ports.dns}
                    for name, proto in dns_ports
                ],
            },
        },
        host_endpoint_slice("kube-system", "kube-dns", [(n, p, ports.dns) for n, p in dns_ports]),
        host_endpoint_slice("default", "kubernetes", [("https", "TCP", apiserver_port)]),
    ]


def host_endpoint_slice(
    namespace: str, service: str, ports: list[tuple[str, str, int]]
) -> dict[str, Any]:
    """An EndpointSlice sending `service` to a process on the node IP; ports: (name, proto, n)."""
    return {
        "apiVersion": "discovery.k8s.io/v1",
        "kind": "EndpointSlice",
        "metadata": {
            "name": f"{service}-node",
            "namespace": namespace,
            "labels": {
                "kubernetes.io/service-name": service,
                # Any other value than the mirroring controller's keeps controllers off it.
                "endpointslice.kubernetes.io/managed-by": MANAGED_BY,
            },
        },
        "addressType": "IPv4",
        "endpoints": [
            {"addresses": [NODE_IP], "conditions": {"ready": True}, "nodeName": NODE_NAME}
        ],
        "ports": [{"name": name, "protocol": proto, "port": port} for name, proto, port in ports],
    }


def _coredns_role() -> dict[str, Any]:
    return {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "ClusterRole",
        "metadata": {"name": f"{RBAC_PREFIX}coredns"},
        "rules": [
            {"apiGroups": [""], "resources": ["endpoints", "services", "pods", "namespaces"],
             "verbs": ["list", "watch"]},
            {"apiGroups": ["discovery.k8s.io"], "resources": ["endpointslices"],
             "verbs": ["list", "watch"]},
        ],
    }


def _binding(name: str, role: str, subject: dict[str, str]) -> dict[str, Any]:
    return {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "ClusterRoleBinding",
        "metadata": {"name": f"{RBAC_PREFIX}{name}"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": role},
        "subjects": [{"apiGroup": "rbac.authorization.k8s.io", **subject}],
    }
