"""tools/build-gitops.sh as the tests use it: warm cache is a no-op, failures carry the reason."""

from __future__ import annotations

import subprocess

import pytest

from tests.unit.ecosystem import gitops_tools
from tests.unit.ecosystem.argocd import BUILD_TIMEOUT

pytestmark = BUILD_TIMEOUT


def test_a_warm_cache_builds_nothing_and_names_the_tools_directory():
    path = gitops_tools.tool("kstatus")  # builds on a cold cache
    proc = subprocess.run(["bash", str(gitops_tools.BUILD_SCRIPT), "kstatus"],
                          capture_output=True, text=True, check=True)
    assert "cache warm" in proc.stderr and "building" not in proc.stderr
    assert proc.stdout.splitlines()[-1] == str(path.parent)
    assert path.parent.name.startswith("kstatus-v0.37.2-")


def test_a_tool_that_cannot_be_built_fails_with_the_build_output():
    with pytest.raises(gitops_tools.ToolUnavailable, match="unknown tool no-such-tool"):
        gitops_tools.tool("no-such-tool")


def test_bad_input_is_reported_not_swallowed():
    with pytest.raises(gitops_tools.ToolUnavailable,
                       match="kstatus exited with 2: kstatus: bad List"):
        gitops_tools._run("kstatus", [], [{"kind": "Model"}, "not an object"])
