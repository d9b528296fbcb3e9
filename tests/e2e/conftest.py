"""Fixtures for tests/e2e: a real node (or kind) with the operator installed in-cluster.

`e2e_cluster` (session, one parameter per flavor) yields an `E2ECluster`. The flavor is kind
wherever kind can run (its node image is present: `make setup` builds it where Docker runs) and
the host node elsewhere; MODELOPS_LOCAL_CLUSTER=node|kind|both overrides that.
- "existing": with MODELOPS_USE_EXISTING_CLUSTER=1, the cluster KUBECONFIG names (the operator
  already installed, e.g. by `devcluster up --deploy`).
- "node": a control plane and a node on this host, started here in a temp dir, with
  containerd's image store kept in the cache between runs. Skipped, with the reason printed, when this host cannot run a node (not root, no
  containerd/runc/CNI plugins/Docker, ...) or another session's node holds it; a node that
  could start but does not is a failure.
- "kind": a kind cluster through pytest-kind, from the kind binary and node image
  tools/build-kind.sh makes (or $MODELOPS_KIND_NODE_IMAGE), with the cluster config
  modelops.devcluster.kind derives from this host's quirks; the project's images go in with
  `kind load`. One session at a time holds it (flock on /tmp/modelops-e2e.lock); skipped with the
  reason where kind cannot run (nothing is downloaded).
The binaries and images are built right after collection, outside any test's timeout; set-up
times are printed at the end of the run, and component logs when an e2e test failed.
"""

from __future__ import annotations

import fcntl
import io
import os
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import joblib
import numpy as np
import pytest
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import FunctionTransformer

from modelops.contract import ENV_CACHE, ENV_USE_EXISTING_CLUSTER, OPERATOR_NAMESPACE
from modelops.devcluster.access import ClusterAccess, destructive_use_refusal
from modelops.devcluster.binaries import BinariesError, resolve_bin_dir
from modelops.devcluster.cluster import ControlPlane, ControlPlaneError, ControlPlaneSettings
from modelops.devcluster.components import BINARIES
from modelops.devcluster.kind import (KindError, KindSettings, guard_service_range, host_address,
                                      kind_problems, local_clusters, node_container,
                                      settings_image_problems, write_cluster_config)
from modelops.devcluster.node import (NODE_BUILD_SCRIPT, Node, NodeBusyError, NodeError,
                                      NodeSettings, node_problems)
from modelops.devcluster.node_deploy import apply_samples, install_operator, node_image_loader
from modelops.devcluster.node_config import NODE_IP
from modelops.devcluster.node_plan import NODE_BINARIES
from tests.e2e.support import KIND_CLUSTER, ClientPod, E2ECluster

HERE = Path(__file__).resolve().parent
KIND_LOCK = Path("/tmp/modelops-e2e.lock")
KIND_LOCK_WAIT = 1800  # seconds another session's kind cluster may hold the lock
# Chosen at import, before the binaries are resolved: where the node image is present, the
# fixture checks the rest of what kind needs and says why when something is missing.
FLAVORS = ("existing",) if os.environ.get(ENV_USE_EXISTING_CLUSTER) == "1" else local_clusters(
    os.environ, settings_image_problems(os.environ))
_BIN_DIR = pytest.StashKey["Path | BinariesError"]()
_TIMES = pytest.StashKey[dict]()
_NODES = pytest.StashKey[list]()


def _is_e2e(path: Path) -> bool:
    return HERE in path.parents


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if _is_e2e(item.path):
            item.add_marker(pytest.mark.e2e)


def pytest_collection_finish(session: pytest.Session) -> None:
    """Find or build the node's binaries once, before any test's timeout starts."""
    if session.config.option.collectonly or not any(_is_e2e(i.path) for i in session.items):
        return
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    progress = reporter.write_line if reporter else (lambda line: None)
    try:
        found: Path | BinariesError = resolve_bin_dir(BINARIES, progress=progress)
        if "node" in FLAVORS:
            found = resolve_bin_dir(NODE_BINARIES, progress=progress,
                                    build_script=NODE_BUILD_SCRIPT)
    except BinariesError as failure:
        found = failure
    session.config.stash[_BIN_DIR] = found
    session.config.stash[_TIMES] = {}
    session.config.stash[_NODES] = []


def _say(config: pytest.Config, line: str) -> None:
    reporter = config.pluginmanager.get_plugin("terminalreporter")
    if reporter:
        reporter.write_line(f"e2e: {line}")


@pytest.fixture(scope="session", params=FLAVORS)
def e2e_cluster(request: pytest.FixtureRequest,
                tmp_path_factory: pytest.TempPathFactory) -> Iterator[E2ECluster]:
    bin_dir = request.config.stash.get(_BIN_DIR, None)
    if bin_dir is None or isinstance(bin_dir, BinariesError):
        pytest.fail(f"cannot get the node binaries: {bin_dir}", pytrace=False)
    if request.param == "kind":
        yield from _kind_cluster(request.config, bin_dir, tmp_path_factory.mktemp("kind"))
        return
    if request.param == "existing":
        yield _existing_cluster(bin_dir)
        return
    yield from _node_cluster(request.config, bin_dir, tmp_path_factory.mktemp("e2e"))


def _node_cluster(config: pytest.Config, bin_dir: Path, work_dir: Path) -> Iterator[E2ECluster]:
    problems = node_problems(bin_dir)
    if problems:
        pytest.skip("this host cannot run a node: " + "; ".join(problems))
    times, began = config.stash[_TIMES], time.monotonic()
    plane = ControlPlane(ControlPlaneSettings(bin_dir=bin_dir, work_dir=work_dir,
                                              die_with_parent=True, serve_node=True))
    store = Path(os.environ.get(ENV_CACHE) or Path.home() / ".cache" / "modelops") / "e2e-store"
    node = Node(NodeSettings(bin_dir, work_dir / "node", die_with_parent=True, store_dir=store))
    config.stash[_NODES].append((plane, node))
    try:
        plane.start()
        node.start(plane)
        times["control plane + node"] = time.monotonic() - began
        access = ClusterAccess(plane.kubeconfig, bin_dir, plane)
        began = time.monotonic()
        install_operator(access, node_image_loader(node.layout.containerd_socket),
                         lambda line: _say(config, line))
        times["images + operator"] = time.monotonic() - began
        yield E2ECluster(access, "node", NODE_IP)
    except NodeBusyError as busy:  # another session's node: contention, not a defect
        pytest.skip(str(busy))
    except (ControlPlaneError, NodeError) as failure:
        pytest.fail(str(failure), pytrace=False)
    finally:
        node.stop()
        plane.stop()


def _existing_cluster(bin_dir: Path) -> E2ECluster:
    kubeconfig = os.environ.get("KUBECONFIG")
    if not kubeconfig:
        pytest.fail(f"{ENV_USE_EXISTING_CLUSTER}=1 needs KUBECONFIG to name the cluster", False)
    access = ClusterAccess(Path(kubeconfig), bin_dir)
    context = access.kubectl("config", "current-context").stdout.strip()
    refusal = destructive_use_refusal(context, os.environ)
    if refusal:
        pytest.fail(refusal, pytrace=False)
    access.kubectl("-n", OPERATOR_NAMESPACE, "rollout", "status", "deployment/modelops-operator",
                   "--timeout=120s", timeout=150)
    try:
        address = host_address()  # a kind cluster's pods reach the host at the network gateway
    except KindError:
        address = NODE_IP
    return E2ECluster(access, "existing", address)


def _kind_lock(config: pytest.Config) -> int:
    """An exclusive flock on KIND_LOCK (the fd), waiting for another session's cluster."""
    fd = os.open(KIND_LOCK, os.O_CREAT | os.O_RDWR, 0o666)
    deadline, said = time.monotonic() + KIND_LOCK_WAIT, False
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return fd
        except BlockingIOError:
            if time.monotonic() > deadline:
                os.close(fd)
                pytest.skip(f"kind: {KIND_LOCK} held by another session for {KIND_LOCK_WAIT} s")
            if not said:
                _say(config, f"kind: waiting for {KIND_LOCK} (another session's cluster)")
                said = True
            time.sleep(2)


def _kind_cluster(config: pytest.Config, bin_dir: Path, work_dir: Path) -> Iterator[E2ECluster]:
    settings = KindSettings.from_env(bin_dir, os.environ, name=KIND_CLUSTER)
    problems = kind_problems(settings)
    if problems:
        pytest.skip("kind: " + "; ".join(problems))
    from pytest_kind import KindCluster  # only where kind can run

    lock = _kind_lock(config)
    times, began = config.stash[_TIMES], time.monotonic()
    cluster = KindCluster(KIND_CLUSTER, kubeconfig=work_dir / "kubeconfig",
                          image=settings.node_image, kind_path=settings.kind,
                          kubectl_path=bin_dir / "kubectl")
    try:
        cluster.delete()  # a cluster left by a killed session would carry its objects
        cluster.create(write_cluster_config(settings, work_dir / "kind.yaml"))
        guard_service_range(node_container(KIND_CLUSTER))
        times["kind cluster"] = time.monotonic() - began
        access = ClusterAccess(Path(cluster.kubeconfig_path), bin_dir)
        began = time.monotonic()
        install_operator(access, lambda tags: [cluster.load_docker_image(t) or t for t in tags],
                         lambda line: _say(config, line))
        times["kind images + operator"] = time.monotonic() - began
        yield E2ECluster(access, "kind", host_address())
    except KindError as failure:
        pytest.fail(str(failure), pytrace=False)
    finally:
        cluster.delete()
        os.close(lock)


def _fresh_namespace(access: ClusterAccess, prefix: str) -> str:
    name = f"{prefix}-{uuid.uuid4().hex[:6]}"
    access.kubectl("create", "namespace", name)
    access.kubectl("wait", "--for=create", "serviceaccount/default", "-n", name, "--timeout=60s")
    return name


_CALL_FAILED = pytest.StashKey[bool]()
DIAGNOSTIC_LINES = 40


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo):
    report = yield
    if report.when == "call":
        item.stash[_CALL_FAILED] = report.failed
    return report


@pytest.fixture
def namespace(e2e_cluster: E2ECluster, request: pytest.FixtureRequest) -> Iterator[str]:
    """A fresh namespace, deleted afterwards; when the test failed, its Events and the
    operator's log lines about it are printed first (a kind cluster is gone by the summary)."""
    name = _fresh_namespace(e2e_cluster.access, "e2e")
    yield name
    if request.node.stash.get(_CALL_FAILED, False):
        _print_diagnostics(e2e_cluster.access, name)
    e2e_cluster.access.kubectl("delete", "namespace", name, "--wait=false", check=False)


def _print_diagnostics(access: ClusterAccess, namespace: str) -> None:
    events = access.kubectl(
        "get", "events", "-n", namespace, "--sort-by=.lastTimestamp", "-o",
        "custom-columns=TIME:.lastTimestamp,OBJECT:.involvedObject.name,REASON:.reason,"
        "MESSAGE:.message", check=False).stdout.splitlines()
    log = access.kubectl("logs", "-n", OPERATOR_NAMESPACE, "deployment/modelops-operator",
                         "--timestamps", "--since=15m", check=False, timeout=60).stdout
    mine = [line for line in log.splitlines() if namespace in line]
    print(f"\n----- Events in {namespace} (last {DIAGNOSTIC_LINES})", *events[-DIAGNOSTIC_LINES:],
          f"----- operator log about {namespace} (last {DIAGNOSTIC_LINES})",
          *mine[-DIAGNOSTIC_LINES:], sep="\n")


@pytest.fixture(scope="session")
def client(e2e_cluster: E2ECluster) -> Iterator[ClientPod]:
    """A pod to send requests from, inside the cluster (Service DNS, kube-proxy)."""
    name = _fresh_namespace(e2e_cluster.access, "e2e-client")
    yield ClientPod(e2e_cluster.access, name).create()
    e2e_cluster.access.kubectl("delete", "namespace", name, "--wait=false", check=False)


@pytest.fixture(scope="session")
def samples(e2e_cluster: E2ECluster) -> Iterator[str]:
    """A namespace holding deploy/samples (iris and the two-step pipeline)."""
    name = f"e2e-samples-{uuid.uuid4().hex[:6]}"
    apply_samples(e2e_cluster.access, name)
    yield name
    e2e_cluster.access.kubectl("delete", "namespace", name, "--wait=false", check=False)


@pytest.fixture(scope="session")
def artifacts() -> dict[str, bytes]:
    """Artifacts trained here with the image's scikit-learn. good: LogisticRegression; flaky:
    log() of the inputs first, so a negative feature becomes NaN and the model raises for those
    rows (a 500) while positive rows are fine; disagree: see `_disagreeing`."""
    X, y = load_iris(return_X_y=True)
    good = LogisticRegression(max_iter=500).fit(X, y)
    flaky = make_pipeline(FunctionTransformer(np.log), FunctionTransformer(validate=True),
                          LogisticRegression(max_iter=500)).fit(X + 1, y)
    return {"good.joblib": _dump(good), "flaky.joblib": _dump(flaky),
            "disagree.joblib": _dump(_disagreeing(X, y)), "frame.joblib": _dump(_frame_pipeline())}


def _disagreeing(X, y):
    """Agrees with good on the client's good row (class 0) but answers class 2, without an
    error, for its bad row (a negative first feature): with bad_share 0.3, 30 % disagree."""
    negative = X[y == 0].copy()
    negative[:, 0] = -1.0
    return LogisticRegression(max_iter=1000).fit(np.vstack([X, negative]),
                                                 np.concatenate([y, np.full(len(negative), 2)]))


def _frame_pipeline():
    """A ColumnTransformer pipeline on a DataFrame: OneHotEncoder on strings, scaler on numbers."""
    from tests.unit.serving.serving_support import train_frame_pipeline

    return train_frame_pipeline()


def _dump(model) -> bytes:
    buffer = io.BytesIO()
    joblib.dump(model, buffer)
    return buffer.getvalue()


def pytest_terminal_summary(terminalreporter, exitstatus: int, config: pytest.Config) -> None:
    times = config.stash.get(_TIMES, None)
    if times:
        terminalreporter.section("e2e set-up times")
        for what, seconds in times.items():
            terminalreporter.write_line(f"{what}: {seconds:.1f} s")
    failed = terminalreporter.stats.get("failed", []) + terminalreporter.stats.get("error", [])
    if not any(_is_e2e(Path(str(config.rootpath / r.location[0]))) for r in failed):
        return
    for plane, node in config.stash.get(_NODES, []):
        terminalreporter.section("e2e component logs (last 30 lines each)")
        for name, text in {**plane.log_tails(30), **node.log_tails(30)}.items():
            terminalreporter.write_line(f"----- {name}")
            terminalreporter.write(text)
