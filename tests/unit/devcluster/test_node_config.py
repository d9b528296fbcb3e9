"""node_config: the node's files come from its layout and ports alone, and keep it on this host."""

from __future__ import annotations

import ipaddress
import tomllib
from pathlib import Path

from modelops.devcluster import components as comp
from modelops.devcluster import node_config as cfg

LAYOUT = cfg.NodeLayout(Path("/w/node"))
PORTS = cfg.NodePorts(containerd_metrics=1001, kubelet=1002, kubelet_healthz=1003,
                      proxy_healthz=1004, proxy_metrics=1005, dns=1006, dns_health=1007,
                      dns_ready=1008)


def test_addresses_fit_the_control_planes_ranges() -> None:
    services = ipaddress.ip_network(comp.SERVICE_CIDR)
    pods = ipaddress.ip_network(cfg.POD_CIDR)
    assert ipaddress.ip_address(cfg.CLUSTER_DNS_IP) in services
    assert ipaddress.ip_address(cfg.NODE_IP) in pods
    assert not services.overlaps(pods)


def test_containerd_keeps_to_its_own_dirs_and_socket() -> None:
    config = tomllib.loads(cfg.containerd_config(LAYOUT, PORTS, "modelops/pause:9"))
    assert config["root"] == "/w/node/containerd" and config["state"] == "/w/node/run/state"
    assert config["grpc"]["address"] == "/w/node/run/containerd.sock"
    assert config["metrics"]["address"] == "127.0.0.1:1001"
    cri = config["plugins"]["io.containerd.grpc.v1.cri"]
    assert cri["sandbox_image"] == "modelops/pause:9"
    assert cri["restrict_oom_score_adj"] is True
    assert cri["cni"]["conf_dir"] == "/w/node/cni/net.d"
    assert cri["containerd"]["runtimes"]["runc"]["options"]["SystemdCgroup"] is False


def test_a_separate_image_store_moves_only_containerds_root() -> None:
    layout = cfg.NodeLayout(Path("/w/node"), store_dir=Path("/cache/store"))
    config = tomllib.loads(cfg.containerd_config(layout, PORTS, "p"))
    assert config["root"] == "/cache/store"
    assert config["grpc"]["address"] == "/w/node/run/containerd.sock"
    assert layout.containerd_root not in layout.runtime_dirs
    assert layout.path("run") not in layout.runtime_dirs  # shims of surviving pods live there


def test_the_bridge_network_never_masquerades_and_leases_stay_under_the_node_dir() -> None:
    bridge = cfg.cni_conflist(LAYOUT)["plugins"][0]
    assert bridge["bridge"] == cfg.BRIDGE and bridge["ipMasq"] is False
    assert bridge["ipam"]["ranges"] == [[{"subnet": cfg.POD_CIDR, "gateway": cfg.NODE_IP}]]
    assert bridge["ipam"]["dataDir"] == "/w/node/cni/networks"


def test_kubelet_serves_on_the_node_ip_and_reports_health_on_loopback() -> None:
    kubelet = cfg.kubelet_config(LAYOUT, PORTS, Path("/w/pki/client-ca.crt"))
    assert (kubelet["address"], kubelet["port"]) == (cfg.NODE_IP, 1002)
    assert (kubelet["healthzBindAddress"], kubelet["healthzPort"]) == ("127.0.0.1", 1003)
    assert kubelet["authentication"]["anonymous"]["enabled"] is False
    assert kubelet["authorization"]["mode"] == "Webhook"
    assert kubelet["clusterDNS"] == [cfg.CLUSTER_DNS_IP] and kubelet["resolvConf"] == ""
    assert kubelet["containerRuntimeEndpoint"] == "unix:///w/node/run/containerd.sock"


def test_kube_proxy_uses_iptables_and_leaves_conntrack_sysctls_alone() -> None:
    proxy = cfg.proxy_config(Path("/w/kp.kubeconfig"), PORTS)
    assert proxy["mode"] == "iptables" and proxy["clusterCIDR"] == cfg.POD_CIDR
    assert proxy["conntrack"]["maxPerCore"] == 0
    assert proxy["healthzBindAddress"] == "127.0.0.1:1004"


def test_coredns_binds_the_node_ip_and_forwards_nowhere() -> None:
    corefile = cfg.corefile(Path("/w/dns.kubeconfig"), "ctx", PORTS)
    assert corefile.startswith(".:1006 {") and f"bind {cfg.NODE_IP}" in corefile
    assert "kubeconfig /w/dns.kubeconfig ctx" in corefile
    assert "ready 127.0.0.1:1008" in corefile
    assert "forward" not in corefile


def test_too_long_a_dir_for_the_socket_is_named() -> None:
    assert cfg.socket_path_problem(LAYOUT) is None
    deep = cfg.NodeLayout(Path("/" + "d" * 100))
    assert "longer than 107 bytes" in cfg.socket_path_problem(deep)
