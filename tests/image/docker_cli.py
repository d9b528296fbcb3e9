"""The docker CLI for the image tests: run a command, read a container's logs (no fixtures)."""

from __future__ import annotations

import subprocess
from dataclasses import dataclass

import pytest

DOCKER_TIMEOUT_SECONDS = 60


@dataclass(frozen=True)
class Images:
    serving: str
    operator: str


def docker(*args: str, timeout: float = DOCKER_TIMEOUT_SECONDS, check: bool = True) -> str:
    """Run the docker CLI; return stdout, or fail the test with docker's stderr."""
    result = subprocess.run(["docker", *args], capture_output=True, text=True, timeout=timeout)
    if check and result.returncode != 0:
        pytest.fail(f"docker {' '.join(args[:3])} ... exited {result.returncode}: {result.stderr.strip()}")
    return result.stdout


def container_logs(container_id: str) -> str:
    """The container's stdout and stderr (docker logs replays them on its own two streams)."""
    result = subprocess.run(["docker", "logs", "--tail", "60", container_id], capture_output=True,
                            text=True, timeout=DOCKER_TIMEOUT_SECONDS)
    return result.stdout + result.stderr
