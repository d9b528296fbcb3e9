"""deploy/argocd's layout for the tests: the health_test.yaml cases, fixtures and Argo CD's verdict.

The scripts live in Argo CD's resource_customizations layout (`<group>/<Kind>/health.lua`,
`health_test.yaml`, `testdata/`) and are installed through argocd-cm. `health` runs objects
through Argo CD's own code (tools/gitops/argocd-health: the settings manager reads argocd-cm,
gitops-engine's GetResourceHealth runs the script in Argo CD's Lua VM), so what a test sees is
what an Argo CD v3.6.1 controller would show.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from tests.unit.ecosystem import gitops_tools

ROOT = gitops_tools.ROOT
CUSTOMIZATIONS = ROOT / "deploy" / "argocd"
# `make setup` builds the tools; a cold cache builds them in the first test (minutes for Argo CD)
BUILD_TIMEOUT = pytest.mark.timeout(1800)


@dataclass(frozen=True)
class Health:
    status: str
    message: str = ""


def health(objects: list[dict], argocd_cm: Path = gitops_tools.ARGOCD_CM) -> list[Health]:
    """Argo CD's health of each object; a tool that cannot be built fails the calling test."""
    try:
        results = gitops_tools.argocd_health(objects, argocd_cm)
    except gitops_tools.ToolUnavailable as error:
        pytest.fail(str(error))
    return [Health("Error", r.error) if r.error else Health(r.status, r.message)
            for r in results]


@dataclass(frozen=True)
class HealthCase:
    kind: str
    input_path: Path
    expected: Health


def health_cases(kind: str, group: str = "modelops.io") -> list[HealthCase]:
    """Every case of `<group>/<kind>/health_test.yaml`, in Argo CD's test format."""
    folder = CUSTOMIZATIONS / group / kind
    tests = yaml.safe_load((folder / "health_test.yaml").read_text())["tests"]
    return [HealthCase(kind, folder / t["inputPath"],
                       Health(t["healthStatus"]["status"], t["healthStatus"].get("message", "")))
            for t in tests]


def load_object(path: Path) -> dict:
    return yaml.safe_load(path.read_text())
