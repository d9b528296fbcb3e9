"""components: the flags each process gets, from the layout and the ports alone."""

from __future__ import annotations

from pathlib import Path

import pytest

from modelops.devcluster import components as comp

BIN = Path("/opt/k8s/bin")
LAYOUT = comp.Layout(Path("/work/dc"))
PORTS = comp.Ports(
    etcd_client=2379, etcd_peer=2380, apiserver=6443, controller_manager=10257, scheduler=10259
)


def flags(component) -> dict[str, str]:
    return dict(arg.removeprefix("--").split("=", 1) for arg in component.argv[1:])


@pytest.mark.parametrize("no_fsync", [True, False])
def test_etcd_is_a_single_loopback_member(no_fsync: bool) -> None:
    etcd = comp.etcd_component(BIN, LAYOUT, PORTS, no_fsync=no_fsync)
    got = flags(etcd)
    assert etcd.argv[0] == "/opt/k8s/bin/etcd"
    assert got["listen-client-urls"] == "http://127.0.0.1:2379"
    assert got["initial-cluster"] == "default=http://127.0.0.1:2380"
    assert got["data-dir"] == "/work/dc/etcd"
    assert ("unsafe-no-fsync" in got) is no_fsync
    assert etcd.health_url == "http://127.0.0.1:2379/health"


def test_apiserver_flags_for_an_offline_loopback_server() -> None:
    api = comp.apiserver_component(BIN, LAYOUT, PORTS, with_controllers=True)
    got = flags(api)
    assert got["etcd-servers"] == "http://127.0.0.1:2379"
    assert got["advertise-address"] == got["bind-address"] == "127.0.0.1"
    assert got["endpoint-reconciler-type"] == "none"
    assert got["client-ca-file"] == "/work/dc/pki/client-ca.crt"
    assert got["service-account-key-file"] == "/work/dc/pki/sa.pub"
    assert got["service-account-signing-key-file"] == "/work/dc/pki/sa.key"
    assert got["service-account-issuer"] == "https://127.0.0.1:6443/"
    assert "disable-admission-plugins" not in got
    assert api.health_url == "https://127.0.0.1:6443/readyz"
    assert api.ca_file == LAYOUT.pki("serving-ca.crt")


def test_without_controllers_the_serviceaccount_admission_plugin_is_off() -> None:
    api = comp.apiserver_component(BIN, LAYOUT, PORTS, with_controllers=False)
    assert flags(api)["disable-admission-plugins"] == "ServiceAccount"


def test_controllers_use_the_admin_kubeconfig_and_their_own_ports() -> None:
    kcm = comp.controller_manager_component(BIN, LAYOUT, PORTS)
    scheduler = comp.scheduler_component(BIN, LAYOUT, PORTS)
    for component, port in ((kcm, 10257), (scheduler, 10259)):
        got = flags(component)
        assert got["kubeconfig"] == "/work/dc/kubeconfig"
        assert got["secure-port"] == str(port)
        assert got["leader-elect"] == "false"
        assert component.health_url == f"https://127.0.0.1:{port}/healthz"
    assert flags(kcm)["service-account-private-key-file"] == "/work/dc/pki/sa.key"
    assert flags(kcm)["root-ca-file"] == "/work/dc/pki/serving-ca.crt"
