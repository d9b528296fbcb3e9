"""state: state.json round-trips and a damaged file is reported by field."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from modelops.devcluster.components import Ports
from modelops.devcluster.process import Component, RunningProcess
from modelops.devcluster.state import (
    ClusterState,
    StateError,
    decode_state,
    encode_state,
    read_state,
    write_state,
)

STATE = ClusterState(
    bin_dir=Path("/bin"),
    kubeconfig=Path("/dc/kubeconfig"),
    ports=Ports(1, 2, 3, 4, 5),
    processes=(
        RunningProcess(
            Component("etcd", ("etcd", "--x"), "http://127.0.0.1:1/health"),
            10,
            99,
            Path("/dc/logs/etcd.log"),
        ),
        RunningProcess(
            Component(
                "kube-apiserver",
                ("kube-apiserver",),
                "https://127.0.0.1:3/readyz",
                ca_file=Path("/dc/pki/ca.crt"),
                client_cert=(Path("/dc/pki/a.crt"), Path("/dc/pki/a.key")),
            ),
            11,
            100,
            Path("/dc/logs/kube-apiserver.log"),
        ),
    ),
)


def test_round_trip_through_the_file(tmp_path: Path) -> None:
    path = tmp_path / "state.json"
    write_state(path, STATE)
    assert read_state(path) == STATE
    assert json.loads(path.read_text())["processes"][0]["pid"] == 10


def test_missing_field_is_named() -> None:
    data = encode_state(STATE)
    del data["processes"][1]["start_ticks"]
    with pytest.raises(StateError, match="^start_ticks: missing"):
        decode_state(data)


def test_unknown_version_is_refused() -> None:
    with pytest.raises(StateError, match="^version:"):
        decode_state({**encode_state(STATE), "version": 99})


def test_absent_or_broken_file(tmp_path: Path) -> None:
    with pytest.raises(StateError, match="no control plane was started here"):
        read_state(tmp_path / "state.json")
    (tmp_path / "state.json").write_text("{nope")
    with pytest.raises(StateError, match="not JSON"):
        read_state(tmp_path / "state.json")
