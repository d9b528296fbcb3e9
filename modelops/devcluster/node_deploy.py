"""Put modelops on a dev node the way a user installs it: images, `kubectl apply -k deploy/`,
then the samples. I/O.

`install_operator` builds the project images (tools/image/build.sh, cached), imports those the
node's containerd lacks, applies deploy/ and waits for the operator's rollout. `apply_samples`
makes the namespace, waits for its default ServiceAccount (pods are refused without it) and
applies deploy/samples there. Both are idempotent: `make e2e`, `devcluster up --deploy` and the
e2e fixtures all call them.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from modelops.contract import OPERATOR_NAMESPACE
from modelops.devcluster.access import ClusterAccess
from modelops.devcluster.node_images import build_project_images, ensure_imported

REPO = Path(__file__).resolve().parents[2]
DEPLOY_DIR = REPO / "deploy"
SAMPLES_DIR = DEPLOY_DIR / "samples"
OPERATOR_DEPLOYMENT = "deployment/modelops-operator"
ROLLOUT_TIMEOUT = "300s"


def install_operator(
    access: ClusterAccess, containerd_socket: Path | None, progress: Callable[[str], None]
) -> list[str]:
    """Images, deploy/ and a finished operator rollout; returns the images imported.

    `containerd_socket` None: the cluster gets images some other way (kind loads them).
    """
    tags = build_project_images(progress)
    imported = ensure_imported(containerd_socket, tags) if containerd_socket else []
    progress(f"imported into containerd: {', '.join(imported) or 'nothing (all current)'}")
    access.kubectl("apply", "-k", str(DEPLOY_DIR))
    access.kubectl("-n", OPERATOR_NAMESPACE, "rollout", "status", OPERATOR_DEPLOYMENT,
                   f"--timeout={ROLLOUT_TIMEOUT}", timeout=360)
    return imported


def apply_samples(access: ClusterAccess, namespace: str) -> None:
    """deploy/samples in `namespace` (created if missing)."""
    namespace_object = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}}
    access.kubectl("apply", "-f", "-", input=json.dumps(namespace_object))
    access.kubectl("wait", "--for=create", "serviceaccount/default", "-n", namespace,
                   "--timeout=60s")
    access.kubectl("apply", "-k", str(SAMPLES_DIR), "-n", namespace)
