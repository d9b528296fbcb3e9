"""node_net: the guard rules and finding leftover mounts (the parts that need no root)."""

from __future__ import annotations

from pathlib import Path

from modelops.devcluster.components import SERVICE_CIDR
from modelops.devcluster.node_config import BRIDGE, NODE_IP
from modelops.devcluster.node_net import FORWARD_CHAIN, INPUT_CHAIN, guard_rules, mounts_under


def test_pods_talk_to_each_other_but_never_leave_the_bridge() -> None:
    forward = guard_rules(6443)[FORWARD_CHAIN]
    assert forward[1] == ["-i", BRIDGE, "-o", BRIDGE, "-j", "ACCEPT"]
    assert ["-i", BRIDGE, "-j", "REJECT"] in forward[1:]
    assert ["-o", BRIDGE, "-j", "REJECT"] in forward[1:]


def test_a_cluster_ip_kube_proxy_has_not_programmed_is_refused_before_anything_else() -> None:
    assert guard_rules(6443)[FORWARD_CHAIN][0] == ["-d", SERVICE_CIDR, "-j", "REJECT"]


def test_only_loopback_and_the_bridge_reach_the_node_ip_and_the_apiserver() -> None:
    rules = guard_rules(6443)[INPUT_CHAIN]
    assert rules[:2] == [["-i", "lo", "-j", "RETURN"], ["-i", BRIDGE, "-j", "RETURN"]]
    assert ["-d", NODE_IP, "-j", "DROP"] in rules
    assert ["-p", "tcp", "--dport", "6443", "-j", "DROP"] in rules


def test_mounts_below_a_dir_come_deepest_first_and_unescaped() -> None:
    mountinfo = "\n".join([
        "22 1 8:1 / / rw - ext4 /dev/vda rw",
        "90 22 0:5 / /w/node/kubelet rw - tmpfs tmpfs rw",
        r"91 90 0:6 / /w/node/kubelet/pods/a/volumes/with\040space rw - tmpfs tmpfs rw",
        "92 22 0:7 / /w/node-other rw - tmpfs tmpfs rw",
    ])
    assert mounts_under(mountinfo, Path("/w/node")) == [
        Path("/w/node/kubelet/pods/a/volumes/with space"), Path("/w/node/kubelet")]
