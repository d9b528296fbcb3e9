"""The control plane's state file (work_dir/state.json): what runs, with which PIDs and ports.

Written after every process start so that `down` (a different Python process, maybe much later)
can stop exactly the processes the harness started, and `status` can probe them. The encoders
are pure; `write_state` replaces the file atomically and `read_state` names the bad field when
the file is damaged.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from modelops.devcluster.components import Ports
from modelops.devcluster.process import Component, RunningProcess

STATE_VERSION = 1


class StateError(ValueError):
    """The state file is missing or damaged."""


@dataclass(frozen=True)
class ClusterState:
    """Everything needed to reattach to a running control plane."""

    bin_dir: Path
    kubeconfig: Path
    ports: Ports
    processes: tuple[RunningProcess, ...]


def encode_state(state: ClusterState) -> dict[str, Any]:
    """A JSON-ready dict for `state`."""
    return {
        "version": STATE_VERSION,
        "bin_dir": str(state.bin_dir),
        "kubeconfig": str(state.kubeconfig),
        "ports": asdict(state.ports),
        "processes": [encode_process(p) for p in state.processes],
    }


def decode_state(data: dict[str, Any]) -> ClusterState:
    """The inverse of `encode_state`; raises StateError naming the first bad field."""
    if data.get("version") != STATE_VERSION:
        raise StateError(f"version: expected {STATE_VERSION}, got {data.get('version')!r}")
    try:
        return ClusterState(
            bin_dir=Path(data["bin_dir"]),
            kubeconfig=Path(data["kubeconfig"]),
            ports=Ports(**data["ports"]),
            processes=tuple(decode_process(p) for p in data["processes"]),
        )
    except KeyError as missing:
        raise StateError(f"{missing.args[0]}: missing from the state file") from None
    except (TypeError, ValueError) as bad:
        raise StateError(f"state file: {bad}") from None


def write_state(path: Path, state: ClusterState) -> None:
    """Write `state` to `path`, atomically."""
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(encode_state(state), indent=2) + "\n", encoding="utf-8")
    os.replace(tmp, path)


def read_state(path: Path) -> ClusterState:
    """Read the state file; StateError when there is none or it cannot be used."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise StateError(f"{path}: no control plane was started here") from None
    try:
        return decode_state(json.loads(text))
    except json.JSONDecodeError as bad:
        raise StateError(f"{path}: not JSON ({bad})") from None


def encode_process(running: RunningProcess) -> dict[str, Any]:
    """A JSON-ready dict for one recorded process (shared with the node's state file)."""
    component = running.component
    return {
        "name": component.name,
        "pid": running.pid,
        "start_ticks": running.start_ticks,
        "log": str(running.log_path),
        "argv": list(component.argv),
        "health_url": component.health_url,
        "ca_file": str(component.ca_file) if component.ca_file else None,
        "client_cert": [str(p) for p in component.client_cert] if component.client_cert else None,
    }


def decode_process(data: dict[str, Any]) -> RunningProcess:
    """The inverse of `encode_process`; raises KeyError, TypeError or ValueError."""
    client_cert = data["client_cert"]
    component = Component(
        name=data["name"],
        argv=tuple(data["argv"]),
        health_url=data["health_url"],
        ca_file=Path(data["ca_file"]) if data["ca_file"] else None,
        client_cert=(Path(client_cert[0]), Path(client_cert[1])) if client_cert else None,
    )
    return RunningProcess(component, int(data["pid"]), int(data["start_ticks"]), Path(data["log"]))
