"""Fixtures for tests/gitops: the real GitOps tools (Flux, Argo CD) against the cluster tier.

The control plane, the CRDs, the operator process and the per-test namespace are the cluster
tier's own fixtures, imported from tests/cluster/conftest.py. What this tier adds: `tool`, which
finds or builds a pinned GitOps tool (tools/build-gitops.sh) and skips the test, with the
build's reason, only when the tool cannot be built here, and `program`, the same for a Debian
program such as redis-server (tools/setup.sh installs it); and the fake pods' `exporter`. Every
test here gets the `gitops` and `cluster` markers.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.cluster.conftest import control_plane, crds, namespace, operator  # noqa: F401
from tests.cluster.test_ecosystem_live import exporter  # noqa: F401 (the fake pods' /metrics)
from tests.unit.ecosystem import gitops_tools

HERE = Path(__file__).resolve().parent


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:  # this hook sees the whole session's items
        if HERE in item.path.parents:
            item.add_marker(pytest.mark.gitops)
            item.add_marker(pytest.mark.cluster)


def tool(name: str) -> Path:
    """The built GitOps tool `name`; the test is skipped, with the reason, when it cannot be built."""
    try:
        return gitops_tools.tool(name)
    except gitops_tools.ToolUnavailable as error:
        pytest.skip(f"{name} cannot be built here: {error}")


def program(name: str, package: str) -> str:
    """A program from a Debian package; skipped, with the reason, when it is not installed."""
    found = shutil.which(name)
    if not found:
        pytest.skip(f"{name} is not installed (Debian package {package}; `make setup` installs it)")
    return found
