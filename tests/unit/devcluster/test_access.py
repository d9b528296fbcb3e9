"""access: the destructive-use guard and the kubectl wrapper (against a stand-in kubectl)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from modelops.contract import DEV_CONTEXT, ENV_ALLOW_DESTRUCTIVE
from modelops.devcluster.access import ClusterAccess, KubectlError, destructive_use_refusal

# Prints its argv and stdin as JSON; fails with a message on stderr when asked to.
FAKE_KUBECTL = """#!/usr/bin/env python3
import json, sys
if "fail" in sys.argv:
    print('Error from server (NotFound): gadgets "x" not found', file=sys.stderr)
    sys.exit(1)
print(json.dumps({"argv": sys.argv[1:], "stdin": sys.stdin.read()}))
"""


@pytest.fixture
def access(tmp_path: Path) -> ClusterAccess:
    kubectl = tmp_path / "kubectl"
    kubectl.write_text(FAKE_KUBECTL)
    kubectl.chmod(0o755)
    return ClusterAccess(kubeconfig=tmp_path / "kubeconfig", bin_dir=tmp_path)


def test_own_context_is_allowed() -> None:
    assert destructive_use_refusal(DEV_CONTEXT, {}) is None


def test_other_context_is_refused_with_the_way_out() -> None:
    refusal = destructive_use_refusal("prod-eu", {})
    assert refusal is not None
    assert "'prod-eu'" in refusal and ENV_ALLOW_DESTRUCTIVE in refusal


@pytest.mark.parametrize(("value", "allowed"), [("1", True), ("0", False), ("yes", False)])
def test_explicit_allow_takes_exactly_1(value: str, allowed: bool) -> None:
    assert (destructive_use_refusal("kind-x", {ENV_ALLOW_DESTRUCTIVE: value}) is None) is allowed


def test_kubectl_passes_the_kubeconfig_args_and_input(access: ClusterAccess) -> None:
    result = access.kubectl("apply", "-f", "-", input="kind: X\n")
    sent = json.loads(result.stdout)
    assert sent["argv"] == [f"--kubeconfig={access.kubeconfig}", "apply", "-f", "-"]
    assert sent["stdin"] == "kind: X\n"


def test_kubectl_failure_carries_the_server_message(access: ClusterAccess) -> None:
    with pytest.raises(KubectlError) as raised:
        access.kubectl("get", "gadget", "fail")
    assert str(raised.value) == (
        "kubectl get gadget fail exited with code 1: "
        'Error from server (NotFound): gadgets "x" not found'
    )
    unchecked = access.kubectl("get", "fail", check=False)
    assert unchecked.returncode == 1 and "NotFound" in unchecked.stderr
