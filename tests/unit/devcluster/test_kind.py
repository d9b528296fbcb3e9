"""kind: host quirks from /proc, the Cluster config they give, the kind network's gateway, where
the local cluster runs, and KindCluster's kind commands (against a fake kind that records them)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from modelops.devcluster.kind import (HostQuirks, KindError, KindSettings, cluster_config,
                                      local_clusters, network_gateway, quirks_from,
                                      service_guard_rules)
from modelops.devcluster.kind_cluster import KindCluster

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
        "kind": "Cluster", "apiVersion": "kind.x-k8s.io/v1alpha4",
        "networking": {"serviceSubnet": "10.96.0.0/16"}}


def test_this_host_with_our_image_gets_every_workaround() -> None:
    config = cluster_config(HostQuirks(privileged_refused=True, cgroup_v1=True), own_image=True)
    assert config["networking"] == {"serviceSubnet": "10.96.0.0/16", "disableDefaultCNI": True}
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


@pytest.mark.parametrize(("wanted", "problems", "expected"), [
    (None, [], ("kind",)),
    ("", [], ("kind",)),
    ("auto", ["no docker CLI"], ("node",)),
    (None, ["node image modelops.local/kind-node:v1.36.3 is not present locally"], ("node",)),
    ("node", [], ("node",)),
    ("kind", ["no docker CLI"], ("kind",)),  # asked for: the fixture then says why it cannot
    ("both", [], ("node", "kind")),
])
def test_kind_wherever_it_can_run(wanted, problems, expected) -> None:
    env = {} if wanted is None else {"MODELOPS_LOCAL_CLUSTER": wanted}
    assert local_clusters(env, problems) == expected


def test_an_unknown_local_cluster_is_refused_by_name() -> None:
    with pytest.raises(ValueError, match=r"MODELOPS_LOCAL_CLUSTER='minikube': expected auto"):
        local_clusters({"MODELOPS_LOCAL_CLUSTER": "minikube"}, [])


FAKE_KIND = """#!/bin/sh
echo "$@" >> "{log}"
case "$1 $2" in
  "get clusters") cat "{clusters}" 2>/dev/null ;;
  "create cluster") echo modelops >> "{clusters}" ;;
  "load docker-image") [ "$5" = missing:1 ] && {{ echo "image: missing:1 not present locally" >&2; exit 1; }} ;;
esac
exit 0
"""


@pytest.fixture
def fake_kind(tmp_path: Path) -> tuple[KindCluster, Path]:
    log = tmp_path / "calls"
    script = tmp_path / "bin" / "kind"
    script.parent.mkdir()
    script.write_text(FAKE_KIND.format(log=log, clusters=tmp_path / "clusters"))
    os.chmod(script, 0o755)
    return KindCluster(KindSettings.from_env(script.parent, {}), tmp_path / "work"), log


def test_create_once_then_reuse(fake_kind) -> None:
    cluster, log = fake_kind
    assert cluster.create() is True
    assert cluster.create() is False
    calls = log.read_text().splitlines()
    creates = [c for c in calls if c.startswith("create cluster")]
    assert len(creates) == 1 and "--name modelops" in creates[0]
    assert f"--kubeconfig {cluster.kubeconfig}" in creates[0]
    assert "--image modelops.local/kind-node:v1." in creates[0]
    config = cluster.work_dir / "kind.yaml"
    assert f"--config {config}" in creates[0] and "kind.x-k8s.io/v1alpha4" in config.read_text()
    assert calls[-1] == f"export kubeconfig --name modelops --kubeconfig {cluster.kubeconfig}"


def test_load_and_delete_name_the_cluster(fake_kind) -> None:
    cluster, log = fake_kind
    assert cluster.load(["modelops/serving:0.1.0", "modelops/operator:0.1.0"]) == [
        "modelops/serving:0.1.0", "modelops/operator:0.1.0"]
    cluster.delete()
    assert log.read_text().splitlines() == [
        "load docker-image --name modelops modelops/serving:0.1.0",
        "load docker-image --name modelops modelops/operator:0.1.0",
        f"delete cluster --name modelops --kubeconfig {cluster.kubeconfig}"]


def test_a_failing_kind_command_says_what_kind_said(fake_kind) -> None:
    cluster, _ = fake_kind
    with pytest.raises(KindError, match=r"load docker-image --name modelops missing:1 exited "
                                        r"with 1:\nimage: missing:1 not present locally"):
        cluster.load(["missing:1"])


def test_the_guard_refuses_the_service_range_from_the_node_and_its_pods() -> None:
    assert service_guard_rules("10.96.0.0/16") == [
        ["OUTPUT", "-d", "10.96.0.0/16", "-j", "REJECT"],
        ["FORWARD", "-d", "10.96.0.0/16", "-j", "REJECT"]]


def test_the_guard_covers_the_range_the_cluster_is_made_with() -> None:
    config = cluster_config(HostQuirks(False, False), own_image=True)
    assert {rule[2] for rule in service_guard_rules()} == {config["networking"]["serviceSubnet"]}
