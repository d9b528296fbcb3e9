"""Fixtures for tests/cluster: a real control plane (or the user's cluster), namespaces, CRDs.

`control_plane` (session) starts etcd + kube-apiserver + kube-controller-manager +
kube-scheduler from modelops.devcluster in a temp dir and yields a `ClusterAccess`
(.kubeconfig, .bin_dir, .kubectl(...), .api_client(), .control_plane). With
MODELOPS_USE_EXISTING_CLUSTER=1 and KUBECONFIG set it uses that cluster instead, but only on
the `modelops-dev` context unless MODELOPS_ALLOW_DESTRUCTIVE=1. The binaries are found or
built right after collection, outside any test's timeout; a build that cannot happen fails the
tests with the reason, it never skips them. Every test here gets the `cluster` marker, and when
one fails the components' log tails are printed in the summary.
"""

from __future__ import annotations

import os
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from modelops.contract import ENV_USE_EXISTING_CLUSTER
from modelops.devcluster.access import ClusterAccess, destructive_use_refusal
from modelops.devcluster.binaries import BinariesError, resolve_bin_dir
from modelops.devcluster.cluster import ControlPlane, ControlPlaneError, ControlPlaneSettings
from modelops.devcluster.components import BINARIES
from tests.cluster.support import CONTROL_PLANE_KEY, Cluster, OperatorProcess

HERE = Path(__file__).resolve().parent
CRDS_DIR = HERE.parents[1] / "crds"
CRD_PREFIX = "customresourcedefinition.apiextensions.k8s.io/"
LOG_TAIL_LINES = 40
_BIN_DIR = pytest.StashKey["Path | BinariesError"]()
_PLANE = CONTROL_PLANE_KEY  # in support: tests/gitops imports this file as another module


def _use_existing_cluster() -> bool:
    return os.environ.get(ENV_USE_EXISTING_CLUSTER) == "1"


def _is_cluster_test(path: Path) -> bool:
    return HERE in path.parents


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    # This hook sees every collected item of the session, not only this folder's.
    for item in items:
        if _is_cluster_test(item.path):
            item.add_marker(pytest.mark.cluster)


def pytest_collection_finish(session: pytest.Session) -> None:
    """Find or build the binaries once, before the first test's timeout starts ticking."""
    if session.config.option.collectonly or not any(
        _is_cluster_test(item.path) for item in session.items
    ):
        return
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    progress = reporter.write_line if reporter else (lambda line: None)
    session.config.stash[_BIN_DIR] = _find_binaries(progress)


def _find_binaries(progress) -> Path | BinariesError:
    names = ("kubectl",) if _use_existing_cluster() else BINARIES
    try:
        return resolve_bin_dir(names, progress=progress)
    except BinariesError as failure:
        return failure


@pytest.fixture(scope="session")
def control_plane(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ClusterAccess]:
    found = request.config.stash.get(_BIN_DIR, None) or _find_binaries(lambda line: None)
    if isinstance(found, BinariesError):
        pytest.fail(f"cannot get the control-plane binaries: {found}", pytrace=False)
    if _use_existing_cluster():
        yield _existing_cluster(found, tmp_path_factory.mktemp("kubeconfig"))
        return
    if _PLANE in request.config.stash:  # another tier imported this fixture (tests/gitops):
        plane = request.config.stash[_PLANE]  # one control plane per session, not one per tier
        yield ClusterAccess(plane.kubeconfig, found, plane)
        return
    settings = ControlPlaneSettings(
        bin_dir=found, work_dir=tmp_path_factory.mktemp("controlplane"), die_with_parent=True
    )
    plane = ControlPlane(settings)
    request.config.stash[_PLANE] = plane
    try:
        plane.start()
    except ControlPlaneError as failure:
        pytest.fail(str(failure), pytrace=False)
    try:
        yield ClusterAccess(plane.kubeconfig, found, plane)
    finally:
        plane.stop()


def _existing_cluster(bin_dir: Path, scratch: Path) -> ClusterAccess:
    if not os.environ.get("KUBECONFIG"):
        pytest.fail(f"{ENV_USE_EXISTING_CLUSTER}=1 needs KUBECONFIG to name the cluster", False)
    kubectl = str(bin_dir / "kubectl")
    context = subprocess.run(
        [kubectl, "config", "current-context"], capture_output=True, text=True, timeout=30
    )
    if context.returncode != 0:
        pytest.fail(f"KUBECONFIG has no usable current context: {context.stderr.strip()}", False)
    refusal = destructive_use_refusal(context.stdout.strip(), os.environ)
    if refusal:
        pytest.fail(refusal, pytrace=False)
    # KUBECONFIG may list several files; tests get one self-contained file for the context.
    flat = subprocess.run(
        [kubectl, "config", "view", "--minify", "--flatten", "--raw"],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    kubeconfig = scratch / "kubeconfig"
    kubeconfig.write_text(flat.stdout)
    kubeconfig.chmod(0o600)
    return ClusterAccess(kubeconfig, bin_dir)


@pytest.fixture
def namespace(control_plane: ClusterAccess) -> Iterator[str]:
    """A fresh namespace `t-<8 hex>` whose default ServiceAccount exists; deleted afterwards."""
    name = f"t-{uuid.uuid4().hex[:8]}"
    control_plane.kubectl("create", "namespace", name)
    # Pods are refused until the controller-manager has made the default ServiceAccount.
    control_plane.kubectl(
        "wait", "--for=create", "serviceaccount/default", "-n", name, "--timeout=60s"
    )
    yield name
    control_plane.kubectl("delete", "namespace", name, "--wait=false", check=False)


@pytest.fixture(scope="session")
def crds(control_plane: ClusterAccess) -> Iterator[list[str]]:
    """Apply crds/ and wait until every CRD is Established; yields the applied object names."""
    manifests = [p for p in CRDS_DIR.glob("*") if p.suffix in (".yaml", ".yml", ".json")]
    if not manifests:
        pytest.fail(f"{CRDS_DIR} holds no CRD manifests (*.yaml); nothing to apply", False)
    how = "-k" if (CRDS_DIR / "kustomization.yaml").exists() else "-f"
    applied = control_plane.kubectl("apply", how, str(CRDS_DIR), "-o", "name").stdout.split()
    definitions = [name for name in applied if name.startswith(CRD_PREFIX)]
    if not definitions:
        pytest.fail(f"{CRDS_DIR} applied, but none of it is a CustomResourceDefinition", False)
    control_plane.kubectl("wait", "--for=condition=Established", "--timeout=60s", *definitions)
    yield applied


@pytest.fixture(scope="module")
def operator(control_plane: ClusterAccess, crds, tmp_path_factory) -> Iterator[OperatorProcess]:
    """The operator as its own process (`python -m modelops.operator`), one per test module."""
    process = OperatorProcess(control_plane.kubeconfig,
                              tmp_path_factory.mktemp("operator") / "operator.log").start()
    yield process
    process.stop()
    assert "Traceback" not in process.log(), process.log()[-4000:]


@pytest.fixture
def cluster(control_plane: ClusterAccess, operator: OperatorProcess) -> Cluster:
    """Typed API access for assertions, with the module's operator running."""
    return Cluster(control_plane.api_client())


def pytest_terminal_summary(terminalreporter, exitstatus: int, config: pytest.Config) -> None:
    plane = config.stash.get(_PLANE, None)
    if plane is None:
        return
    reports = terminalreporter.stats.get("failed", []) + terminalreporter.stats.get("error", [])
    if not any(_is_cluster_test(Path(str(config.rootpath / r.location[0]))) for r in reports):
        return
    terminalreporter.section(f"control plane logs (last {LOG_TAIL_LINES} lines each)")
    for name, text in plane.log_tails(LOG_TAIL_LINES).items():
        terminalreporter.write_line(f"----- {name}")
        terminalreporter.write(text)
