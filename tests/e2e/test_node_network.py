"""The node keeps packets for the Service range on this machine. A ClusterIP that kube-proxy has
not programmed (here: an address no Service holds) must be refused on the node, not routed out
of it: on kind, such packets used to follow the node's default route to the host's gateway (CI
saw a canary's first requests to its brand-new Service answered with empty 404s from there).
Both nodes refuse them with an iptables rule that runs after kube-proxy's DNAT: kind's
(`modelops.devcluster.kind.service_guard_rules`) and the host node's guard chain
(`modelops.devcluster.node_net.guard_rules`), which also routes the range into its bridge."""

from __future__ import annotations

import ipaddress
import json

from modelops.devcluster.components import SERVICE_CIDR
from modelops.devcluster.kind import SERVICE_SUBNET, missing_service_guards, node_container
from tests.e2e.support import KIND_CLUSTER

def unheld_cluster_ip(e2e_cluster) -> str:
    """The range's last host address, checked against every Service in the cluster."""
    cidr = SERVICE_SUBNET if e2e_cluster.flavor == "kind" else SERVICE_CIDR
    address = str(ipaddress.ip_network(cidr).broadcast_address - 1)
    listed = e2e_cluster.access.kubectl("get", "services", "-A", "-o", "json")
    services = json.loads(listed.stdout)
    held = {ip for s in services["items"] for ip in s["spec"].get("clusterIPs") or []}
    assert address not in held, f"{address} belongs to a Service; pick another probe address"
    return address


def test_an_unprogrammed_cluster_ip_gets_no_answer_from_outside_the_node(e2e_cluster, client):
    if e2e_cluster.flavor == "kind":
        # checked before probing: without the guard the probe itself would leave the machine
        assert missing_service_guards(node_container(KIND_CLUSTER)) == []
    address = unheld_cluster_ip(e2e_cluster)
    answer = client.connect(address, 80, timeout=5)
    print(f"\nconnect to unheld ClusterIP {address} ({e2e_cluster.flavor}): {answer}")
    assert answer["error"] == "ECONNREFUSED" and answer["seconds"] < 1, answer
