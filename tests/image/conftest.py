"""Fixtures for the image tier: a usable Docker engine, fresh images, containers cleaned up.

Docker tests skip (with the reason printed by `-ra`) when no engine answers; CI starts one. When
one answers, the session first runs tools/image/build.sh (idempotent, seconds when warm) so the
tests never see an image older than the code; MODELOPS_IMAGE_TEST_BUILD=0 uses the tags as they
are. Every container a test starts is removed by its id at teardown.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests import ports
from tests.image.docker_cli import Images, docker

REPO = Path(__file__).resolve().parents[2]
BUILD_SCRIPT = REPO / "tools" / "image" / "build.sh"
BUILD_TIMEOUT_SECONDS = 1800


@pytest.fixture(scope="session")
def docker_engine() -> None:
    if shutil.which("docker") is None:
        pytest.skip("docker CLI not installed (CI installs docker.io)")
    try:
        result = subprocess.run(["docker", "info"], capture_output=True, text=True, timeout=20)
    except subprocess.TimeoutExpired:
        pytest.skip("docker info timed out: the engine does not answer")
    if result.returncode != 0:
        pytest.skip(f"no Docker engine answers (start dockerd): {result.stderr.strip()[:200]}")


@pytest.fixture(scope="session")
def images(docker_engine) -> Images:
    found = Images(
        serving=os.environ.get("MODELOPS_SERVING_TAG", "modelops/serving:dev"),
        operator=os.environ.get("MODELOPS_OPERATOR_TAG", "modelops/operator:dev"),
    )
    if os.environ.get("MODELOPS_IMAGE_TEST_BUILD", "1") != "0":
        result = subprocess.run([str(BUILD_SCRIPT)], capture_output=True, text=True,
                                timeout=BUILD_TIMEOUT_SECONDS)
        if result.returncode != 0:
            pytest.fail(f"{BUILD_SCRIPT} failed:\n{result.stderr[-3000:]}")
    return found


@pytest.fixture
def containers() -> Iterator[list[str]]:
    """Append the id of every container you start; they are force-removed afterwards."""
    started: list[str] = []
    yield started
    for container_id in started:
        docker("rm", "--force", container_id, check=False)


@pytest.fixture
def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing holds, below the ephemeral range."""
    return ports.free_port()
