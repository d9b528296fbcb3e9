"""kubeconfig: the builder's structure, its input checks, and a file the Python client loads."""

from __future__ import annotations

import base64
import datetime as dt
import stat
from pathlib import Path

import kubernetes
import pytest
import yaml

from modelops.contract import DEV_CONTEXT
from modelops.devcluster import pki
from modelops.devcluster.kubeconfig import build_kubeconfig, write_kubeconfig

SERVER = "https://127.0.0.1:6443"
NOW = dt.datetime(2026, 11, 23, tzinfo=dt.UTC)


@pytest.fixture(scope="module")
def ca_and_admin() -> tuple[pki.KeyPair, pki.KeyPair]:
    ca = pki.make_ca("ca", NOW)
    return ca, pki.issue_client_cert(ca, "admin", ("system:masters",), NOW)


def test_one_cluster_user_and_context_named_after_the_context(ca_and_admin) -> None:
    ca, admin = ca_and_admin
    config = build_kubeconfig(SERVER, ca.cert_pem, admin)
    assert config["current-context"] == DEV_CONTEXT
    assert config["contexts"] == [
        {"name": DEV_CONTEXT, "context": {"cluster": DEV_CONTEXT, "user": DEV_CONTEXT}}
    ]
    (cluster,) = config["clusters"]
    assert cluster["cluster"]["server"] == SERVER
    assert base64.b64decode(cluster["cluster"]["certificate-authority-data"]) == ca.cert_pem
    (user,) = config["users"]
    assert base64.b64decode(user["user"]["client-certificate-data"]) == admin.cert_pem
    assert base64.b64decode(user["user"]["client-key-data"]) == admin.key_pem


def test_context_name_is_a_parameter(ca_and_admin) -> None:
    ca, admin = ca_and_admin
    config = build_kubeconfig(SERVER, ca.cert_pem, admin, context="other")
    assert config["current-context"] == "other"
    assert config["users"][0]["name"] == config["clusters"][0]["name"] == "other"


@pytest.mark.parametrize(
    ("server", "context", "field"),
    [
        ("http://127.0.0.1:6443", DEV_CONTEXT, "server"),
        ("https://127.0.0.1", DEV_CONTEXT, "server"),
        ("127.0.0.1:6443", DEV_CONTEXT, "server"),
        (SERVER, "", "context"),
    ],
)
def test_bad_input_names_the_field(ca_and_admin, server: str, context: str, field: str) -> None:
    ca, admin = ca_and_admin
    with pytest.raises(ValueError, match=f"^{field}:"):
        build_kubeconfig(server, ca.cert_pem, admin, context=context)


def test_written_file_is_private_and_loads_in_the_kubernetes_client(
    ca_and_admin, tmp_path: Path
) -> None:
    ca, admin = ca_and_admin
    config = build_kubeconfig(SERVER, ca.cert_pem, admin)
    path = write_kubeconfig(tmp_path / "sub" / "kubeconfig", config)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert yaml.safe_load(path.read_text())["current-context"] == DEV_CONTEXT
    client_config = kubernetes.client.Configuration()
    kubernetes.config.load_kube_config(config_file=str(path), client_configuration=client_config)
    assert client_config.host == SERVER
    assert Path(client_config.cert_file).read_bytes() == admin.cert_pem
    assert Path(client_config.ssl_ca_cert).read_bytes() == ca.cert_pem


def test_rewriting_replaces_the_file(ca_and_admin, tmp_path: Path) -> None:
    ca, admin = ca_and_admin
    path = tmp_path / "kubeconfig"
    write_kubeconfig(path, build_kubeconfig(SERVER, ca.cert_pem, admin))
    write_kubeconfig(path, build_kubeconfig("https://127.0.0.1:7443", ca.cert_pem, admin))
    assert yaml.safe_load(path.read_text())["clusters"][0]["cluster"]["server"].endswith(":7443")
    assert [p.name for p in tmp_path.iterdir()] == ["kubeconfig"]
