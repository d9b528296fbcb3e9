"""How tests and tools talk to a cluster: kubectl and the Python client, bound to one kubeconfig.

`ClusterAccess` is what the `control_plane` pytest fixture yields, for a control plane the
harness started or for a cluster the user points KUBECONFIG at. `destructive_use_refusal` is the
pure guard for the second case: tests create and delete objects, so they run only on the
harness's own context unless the user explicitly allows another.
"""

from __future__ import annotations

import subprocess
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import kubernetes

from modelops.contract import DEV_CONTEXT, ENV_ALLOW_DESTRUCTIVE
from modelops.devcluster.cluster import ControlPlane

KUBECTL_TIMEOUT_SECONDS = 120.0


class KubectlError(subprocess.CalledProcessError):
    """kubectl failed; unlike CalledProcessError, str() includes what kubectl printed."""

    def __str__(self) -> str:
        command = " ".join(self.cmd[2:])  # drop the binary and --kubeconfig=...
        output = (self.stderr or self.stdout or "").strip()
        return f"kubectl {command} exited with code {self.returncode}: {output}"


@dataclass(frozen=True)
class ClusterAccess:
    """A cluster reachable through `kubeconfig`, with kubectl from `bin_dir`.

    `control_plane` is set when this harness started the cluster (then it can be restarted and
    its logs read), and None for a cluster the user supplied.
    """

    kubeconfig: Path
    bin_dir: Path
    control_plane: ControlPlane | None = None

    def kubectl(
        self,
        *args: str,
        input: str | None = None,
        check: bool = True,
        timeout: float = KUBECTL_TIMEOUT_SECONDS,
    ) -> subprocess.CompletedProcess[str]:
        """Run kubectl against this cluster (text mode); raises KubectlError if `check` fails."""
        argv = [str(self.bin_dir / "kubectl"), f"--kubeconfig={self.kubeconfig}", *args]
        result = subprocess.run(argv, input=input, capture_output=True, text=True, timeout=timeout)
        if check and result.returncode != 0:
            raise KubectlError(result.returncode, argv, result.stdout, result.stderr)
        return result

    def api_client(self) -> kubernetes.client.ApiClient:
        """A new Python client for this cluster (close it, or use it as a context manager)."""
        return kubernetes.config.new_client_from_config(config_file=str(self.kubeconfig))


def destructive_use_refusal(current_context: str, env: Mapping[str, str]) -> str | None:
    """Why tests must not run on `current_context`, or None when they may."""
    if current_context == DEV_CONTEXT or env.get(ENV_ALLOW_DESTRUCTIVE) == "1":
        return None
    return (
        f"refusing to run cluster tests on kube context {current_context!r}: they create and "
        f"delete objects. Use a cluster made by `python -m modelops.devcluster up` (context "
        f"{DEV_CONTEXT!r}) or set {ENV_ALLOW_DESTRUCTIVE}=1 to allow this context."
    )
