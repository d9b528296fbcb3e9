"""kind: host quirks from /proc, the Cluster config they give, the kind network's gateway."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from modelops.devcluster.kind import (HostQuirks, KindError, KindSettings, cluster_config,
                                      network_gateway, quirks_from)

FULL = "CapBnd:\t000001ffffffffff\n"
NO_SYS_RESOURCE = "Name:\tbash\nCapBnd:\t000001fffeffffff\nCapAmb:\t0000000000000000\n"


@pytest.mark.parametrize(("status", "fs_type", "expected"), [
    (FULL, "cgroup2fs", HostQuirks(privileged_refused=False, cgroup_v1=False)),
    (NO_SYS_RESOURCE, "tmpfs", HostQuirks(privileged_refused=True, cgroup_v1=True)),
    (FULL, "tmpfs", HostQuirks(privileged_refused=False, cgroup_v1=True)),
    ("CapBnd:\t000003ffffffffff\n", "cgroup2fs", HostQuirks(False, False)),  # newer-kernel bits
    ("Name:\tbash\n", "cgroup2fs", HostQuirks(privileged_refused=True, cgroup_v1=False)),
])
def test_quirks_from_proc(status: str, fs_type: str, expected: HostQuirks) -> None:
    assert quirks_from(status, 40, fs_type) == expected


def test_plain_host_with_an_official_image_gets_plain_kind() -> None:
    assert cluster_config(HostQuirks(False, False), own_image=False) == {
        "kind": "Cluster", "apiVersion": "kind.x-k8s.io/v1alpha4"}


def test_this_host_with_our_image_gets_every_workaround() -> None:
    config = cluster_config(HostQuirks(privileged_refused=True, cgroup_v1=True), own_image=True)
    assert config["networking"] == {"disableDefaultCNI": True}
    assert "failCgroupV1: false" in config["kubeadmConfigPatches"][0]
    assert "restrict_oom_score_adj = true" in config["containerdConfigPatches"][0]


def test_own_image_is_recognised_by_its_tag(tmp_path: Path) -> None:
    assert KindSettings.from_env(tmp_path, {}).own_image
    assert KindSettings.from_env(tmp_path, {}).node_image.startswith("modelops.local/kind-node:v1.")
    given = KindSettings.from_env(tmp_path, {"MODELOPS_KIND_NODE_IMAGE": "kindest/node:v1.36.3"})
    assert (given.node_image, given.own_image) == ("kindest/node:v1.36.3", False)


def test_gateway_is_the_ipv4_one() -> None:
    inspected = [{"Name": "kind", "IPAM": {"Config": [
        {"Subnet": "fc00:f853:ccd:e793::/64", "Gateway": "fc00:f853:ccd:e793::1"},
        {"Subnet": "172.18.0.0/16", "Gateway": "172.18.0.1"}]}}]
    assert network_gateway(json.dumps(inspected)) == "172.18.0.1"


def test_network_without_gateway_is_an_error() -> None:
    with pytest.raises(KindError, match="no IPv4 gateway"):
        network_gateway(json.dumps([{"Name": "kind", "IPAM": {"Config": []}}]))
