"""node_plan: the node's processes and the API objects it needs."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit

from modelops.devcluster import node_config as cfg
from modelops.devcluster import node_plan as plan
from tests.unit.devcluster.test_node_config import LAYOUT, PORTS

KUBECONFIGS = plan.NodeKubeconfigs(Path("/k/kubelet"), Path("/k/proxy"), Path("/k/dns"))


def test_processes_start_in_dependency_order_with_loopback_health() -> None:
    components = plan.node_components(Path("/bin"), LAYOUT, PORTS, KUBECONFIGS)
    assert [c.name for c in components] == ["containerd", "kubelet", "kube-proxy", "coredns"]
    assert all(urlsplit(c.health_url).hostname == "127.0.0.1" for c in components)
    kubelet = dict(a.removeprefix("--").split("=", 1) for a in components[1].argv[1:])
    assert kubelet["node-ip"] == cfg.NODE_IP and kubelet["kubeconfig"] == "/k/kubelet"
    assert kubelet["root-dir"] == "/w/node/kubelet"


def test_objects_point_dns_and_the_apiserver_at_the_node_ip() -> None:
    objects = {(o["kind"], o["metadata"]["name"]): o for o in plan.cluster_objects(PORTS, 6443)}
    service = objects[("Service", "kube-dns")]
    assert service["spec"]["clusterIP"] == cfg.CLUSTER_DNS_IP
    assert "selector" not in service["spec"]  # endpoints are written by hand
    dns = objects[("EndpointSlice", "kube-dns-node")]
    assert dns["metadata"]["labels"]["kubernetes.io/service-name"] == "kube-dns"
    assert {p["name"]: p["port"] for p in dns["ports"]} == {"dns": 1006, "dns-tcp": 1006}
    api = objects[("EndpointSlice", "kubernetes-node")]
    assert api["metadata"]["namespace"] == "default"
    assert api["endpoints"][0]["addresses"] == [cfg.NODE_IP]
    assert api["ports"] == [{"name": "https", "protocol": "TCP", "port": 6443}]


def test_rbac_binds_nodes_and_coredns_to_what_they_need() -> None:
    objects = plan.cluster_objects(PORTS, 6443)
    bindings = {o["metadata"]["name"]: o for o in objects if o["kind"] == "ClusterRoleBinding"}
    nodes = bindings["modelops-dev:nodes"]
    assert nodes["roleRef"]["name"] == "system:node"
    assert nodes["subjects"][0]["kind"] == "Group"
    assert nodes["subjects"][0]["name"] == plan.NODE_GROUP
    assert bindings["modelops-dev:coredns"]["subjects"][0]["name"] == plan.COREDNS_USER


def test_an_apiserver_for_a_node_listens_beyond_loopback_with_a_kubelet_client_cert() -> None:
    from modelops.devcluster import components as comp
    from tests.unit.devcluster.test_components import BIN, LAYOUT as PLANE, PORTS as PLANE_PORTS

    api = comp.apiserver_component(BIN, PLANE, PLANE_PORTS, with_controllers=True,
                                   serve_node=True)
    flags = dict(a.removeprefix("--").split("=", 1) for a in api.argv[1:])
    assert flags["bind-address"] == comp.ALL_ADDRESSES
    assert flags["kubelet-client-certificate"] == "/work/dc/pki/apiserver-kubelet-client.crt"
    assert api.health_url == "https://127.0.0.1:6443/readyz"  # still probed on loopback
