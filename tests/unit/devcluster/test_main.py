"""__main__ and cluster: the CLI's defaults and its answers when nothing runs (no processes)."""

from __future__ import annotations

from pathlib import Path

import pytest

from modelops.contract import DEV_CLUSTER_DIRNAME, ENV_CACHE
from modelops.devcluster.__main__ import default_work_dir, main
from modelops.devcluster.cluster import (
    ControlPlane,
    ControlPlaneError,
    ControlPlaneSettings,
    free_loopback_ports,
)
from modelops.devcluster.state import StateError


def test_default_dir_is_under_the_cache(tmp_path: Path) -> None:
    assert default_work_dir({ENV_CACHE: str(tmp_path)}) == tmp_path / DEV_CLUSTER_DIRNAME
    assert default_work_dir({}) == Path.home() / ".cache" / "modelops" / DEV_CLUSTER_DIRNAME


def test_status_and_down_with_nothing_started(tmp_path: Path, capsys) -> None:
    assert main(["status", "--dir", str(tmp_path)]) == 1
    assert main(["down", "--dir", str(tmp_path)]) == 0
    err = capsys.readouterr().err
    assert "not running" in err and "nothing to stop" in err


def test_unknown_command_is_a_usage_error(capsys) -> None:
    with pytest.raises(SystemExit) as raised:
        main(["sideways"])
    assert raised.value.code == 2
    assert "invalid choice: 'sideways'" in capsys.readouterr().err


def test_attach_needs_a_state_file(tmp_path: Path) -> None:
    with pytest.raises(StateError):
        ControlPlane.attach(tmp_path)


def test_restart_before_start_is_refused(tmp_path: Path) -> None:
    plane = ControlPlane(ControlPlaneSettings(bin_dir=tmp_path, work_dir=tmp_path))
    with pytest.raises(ControlPlaneError, match="kube-apiserver was never started"):
        plane.restart_apiserver()


def test_free_ports_are_distinct_loopback_ports() -> None:
    ports = free_loopback_ports(5)
    assert len(set(ports)) == 5 and all(1024 <= p < 65536 for p in ports)
