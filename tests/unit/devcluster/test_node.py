"""node: what the Node object does without starting anything (state file, host ownership)."""

from __future__ import annotations

from pathlib import Path

import pytest

from modelops.devcluster import node as node_module
from modelops.devcluster.node import Node, NodeSettings
from modelops.devcluster.state import StateError


def test_attach_needs_a_state_file(tmp_path: Path) -> None:
    with pytest.raises(StateError, match="no node was started here"):
        Node.attach(tmp_path)


def test_a_damaged_state_file_is_named(tmp_path: Path) -> None:
    (tmp_path / "node.json").write_text('{"version": 1, "bin_dir": "/b"}')
    with pytest.raises(StateError, match="node.json: damaged"):
        Node.attach(tmp_path)


def test_stopping_never_touches_a_host_network_another_node_holds(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    lock = tmp_path / "lock"
    lock.write_text("/somewhere/else/node")
    monkeypatch.setattr(node_module, "LOCK_FILE", lock)
    # bin_dir is empty: running kube-proxy --cleanup or iptables would raise, not pass quietly.
    outcomes = Node(NodeSettings(tmp_path / "bin", tmp_path / "node")).stop()
    assert outcomes["network"] == "host network left alone: it belongs to the node in " \
                                  "/somewhere/else/node"
    assert outcomes["pods"].startswith("containerd not running")
    assert lock.read_text() == "/somewhere/else/node"
