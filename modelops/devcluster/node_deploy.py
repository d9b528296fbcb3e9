"""Put modelops on a dev node the way a user installs it: images, `kubectl apply -k deploy/`,
then the samples. I/O.

`install_operator` builds the project images (tools/image/build.sh, cached), hands them to the
cluster (the dev node imports those its containerd lacks; kind loads them), applies deploy/ and
waits until the operator's pod is Ready. `apply_samples`
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
OPERATOR_SELECTOR = "app.kubernetes.io/name=modelops-operator"
ROLLOUT_TIMEOUT = "300s"


def install_operator(
    access: ClusterAccess,
    load_images: Callable[[list[str]], list[str]],
    progress: Callable[[str], None],
) -> list[str]:
    """Images, deploy/ and a Ready operator pod; returns what `load_images` says it loaded."""
    tags = build_project_images(progress)
    loaded = load_images(tags)
    progress(f"images loaded into the cluster: {', '.join(loaded) or 'none (all current)'}")
    access.kubectl("apply", "-k", str(DEPLOY_DIR))
    access.kubectl("-n", OPERATOR_NAMESPACE, "rollout", "status", OPERATOR_DEPLOYMENT,
                   f"--timeout={ROLLOUT_TIMEOUT}", timeout=360)
    # The operator has no readiness probe: Available comes at once, a crash only later.
    access.kubectl("-n", OPERATOR_NAMESPACE, "wait", "--for=condition=Ready", "pod",
                   f"--selector={OPERATOR_SELECTOR}", f"--timeout={ROLLOUT_TIMEOUT}", timeout=360)
    return loaded


def node_image_loader(containerd_socket: Path) -> Callable[[list[str]], list[str]]:
    """`load_images` for the dev node: import into its containerd what it lacks."""
    return lambda tags: ensure_imported(containerd_socket, tags)


def apply_samples(access: ClusterAccess, namespace: str) -> None:
    """deploy/samples in `namespace` (created if missing)."""
    namespace_object = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}}
    access.kubectl("apply", "-f", "-", input=json.dumps(namespace_object))
    access.kubectl("wait", "--for=create", "serviceaccount/default", "-n", namespace,
                   "--timeout=60s")
    access.kubectl("apply", "-k", str(SAMPLES_DIR), "-n", namespace)
