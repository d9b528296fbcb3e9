"""Argo CD for real (issue 15): application-controller and repo-server v3.6.1, built from the
argo-cd Go module (tools/build-gitops.sh argocd), with Debian's redis-server, run on loopback
against the test control plane; our health checks come from deploy/argocd/argocd-cm.yaml. An
Application with automated sync, selfHeal and prune follows ./models of a Git repository served
on loopback by `git http-backend` (tests/cluster/gitserver.py). The operator runs as a real
process; pods are reported ready by the test at a loopback address where a fake exporter serves
their /metrics, as in test_flux_live.py.

The scenario: v1 from Git is Synced + Healthy; v2 pushed to Git breaks (50 % errors) and the
operator rolls it back to v1 without writing the spec, so the Application is Synced + Degraded
with the Model's RolledBack message, and Argo CD does not sync again (its operation, history
and the Model's spec stay as they are for two minutes); v3 (the fix) pushed to Git is Healthy.
"""

from __future__ import annotations

import json
import time

import pytest
import yaml

from modelops import contract
from tests.cluster.gitserver import GitServer, Repo
from tests.cluster.support import Cluster, wait_for
from tests.cluster.test_ecosystem_live import POLICY, _model, _revision
from tests.factories import SHA_B, SHA_C
from tests.gitops import argocd
from tests.gitops.conftest import program, tool
from tests.unit.ecosystem.argocd import BUILD_TIMEOUT

pytestmark = BUILD_TIMEOUT
QUIET_SECONDS = 120  # several resyncs (argocd.RESYNC_SECONDS): nothing for Argo CD to sync


@pytest.fixture(scope="module")
def argo(control_plane, crds, operator, tmp_path_factory):
    redis = program("redis-server", "redis-server")
    bin_dir = tool("argocd").parent  # cold: several minutes; skipped with the reason if it fails
    work = tmp_path_factory.mktemp("argocd")
    argocd.install(control_plane)
    (work / "git").mkdir()
    git = GitServer(work / "git").start()
    started = argocd.ArgoCD(bin_dir, redis, work)
    try:
        started.start(control_plane.kubeconfig)
        argocd.wait_running(started)
        yield git, started
    finally:
        started.stop()
        git.stop()


def _app(cluster: Cluster, name: str) -> dict:
    return cluster.custom.get_namespaced_custom_object(
        argocd.GROUP, argocd.API, argocd.NAMESPACE, "applications", name)


def _state(app: dict) -> tuple[str, str, str]:
    """(sync status, health status, synced revision) of an Application."""
    status = app.get("status") or {}
    return ((status.get("sync") or {}).get("status", ""),
            (status.get("health") or {}).get("status", ""),
            (status.get("sync") or {}).get("revision", ""))


def _model_health(app: dict) -> dict:
    return next((r.get("health") or {} for r in (app.get("status") or {}).get("resources") or []
                 if r.get("kind") == contract.MODEL_KIND), {})


def _syncs(app: dict) -> tuple:
    """What changes when Argo CD syncs: its operation's start and revision, the history."""
    status = app.get("status") or {}
    operation = status.get("operationState") or {}
    return (operation.get("startedAt"), (operation.get("syncResult") or {}).get("revision"),
            len(status.get("history") or []), "operation" in app)


def _argocd_writes(model: dict) -> list[str]:
    return sorted(f.get("time", "") for f in model["metadata"].get("managedFields") or []
                  if f.get("manager") == "argocd-controller")


def _push(repo: Repo, version: str, **spec) -> str:
    model = _model("iris", POLICY, version=version, **spec)
    return repo.commit({"models/iris.yaml": yaml.safe_dump(model)}, f"iris {version}")


def _until(cluster, name, argo, wanted: tuple[str, str], sha: str, what: str, timeout=90) -> dict:
    def check():
        assert not argo.exited(), argo.exited()
        app = _app(cluster, name)
        return app if _state(app) == (*wanted, sha) else None
    try:
        return wait_for(check, timeout=timeout, interval=0.5, what=what)
    except AssertionError as failure:
        app = _app(cluster, name)
        raise AssertionError(f"{failure}\nApplication: {_state(app)}, Model: {_model_health(app)}"
                             f", conditions: {(app.get('status') or {}).get('conditions')}"
                             f"\ncontroller log:\n"
                             f"{argo.log('argocd-application-controller')[-3000:]}") from None


def test_argocd_syncs_the_operator_rolls_back_without_a_sync_loop_and_a_fix_recovers(
        argo, control_plane, exporter, namespace):
    git, processes = argo
    cluster, ns, ip = Cluster(control_plane.api_client()), namespace, exporter.server.server_address[0]
    repo = Repo(git.root, ns, git.root.parent / f"{ns}-work")
    exporter.error_share.update({("iris", "1"): 0.0, ("iris", "2"): 0.5, ("iris", "3"): 0.0})
    start = time.monotonic()
    sha1 = _push(repo, "1")
    control_plane.kubectl("apply", "-f", "-",
                          input=json.dumps(argocd.application(ns, git.url(ns), ns)))
    v1 = _revision(rollback=POLICY)
    wait_for(lambda: cluster.mark_pods_ready(ns, "iris", v1, ip) == 2, timeout=120,
             what="v1 pods (Argo CD to apply the Model from Git, the operator to roll it out)")
    app = _until(cluster, ns, processes, ("Synced", "Healthy"), sha1, "Synced + Healthy with v1")
    print(f"\nv1: {_state(app)} {_model_health(app)} after {time.monotonic() - start:.0f} s")

    sha2 = _push(repo, "2", sha256=SHA_B)
    v2 = _revision(version="2", sha256=SHA_B, rollback=POLICY)
    wait_for(lambda: cluster.mark_pods_ready(ns, "iris", v2, ip) == 2, timeout=90, what="v2 pods")
    wait_for(lambda: cluster.condition(ns, "iris", "Stalled") == ("True", "RolledBack"),
             timeout=90, what="v2 rolled back by the operator")
    app = _until(cluster, ns, processes, ("Synced", "Degraded"), sha2,
                 "Synced + Degraded after the rollback")
    health = _model_health(app)
    print(f"v2 rolled back: {_state(app)} {health} after {time.monotonic() - start:.0f} s")
    assert health["status"] == "Degraded" and health["message"].startswith("RolledBack"), health
    model = cluster.model(ns, "iris")
    assert model["spec"]["version"] == "2" and model["status"]["servingVersion"] == "1"
    syncs, writes = _syncs(app), _argocd_writes(model)
    generation = model["metadata"]["generation"]
    assert writes, [f.get("manager") for f in model["metadata"]["managedFields"]]  # Argo CD's apply
    time.sleep(QUIET_SECONDS)
    app, model = _app(cluster, ns), cluster.model(ns, "iris")
    assert (_syncs(app), _state(app)) == (syncs, ("Synced", "Degraded", sha2))
    assert (_argocd_writes(model), model["metadata"]["generation"]) == (writes, generation)
    assert model["status"]["servingVersion"] == "1"

    sha3 = _push(repo, "3", sha256=SHA_C)
    v3 = _revision(version="3", sha256=SHA_C, rollback=POLICY)
    wait_for(lambda: cluster.mark_pods_ready(ns, "iris", v3, ip) == 2, timeout=90, what="v3 pods")
    app = _until(cluster, ns, processes, ("Synced", "Healthy"), sha3, "Healthy again after the fix")
    assert cluster.service_revision(ns, "iris") == v3
    assert len(app["status"]["history"]) == syncs[2] + 1  # one sync for the fix, no more
    print(f"v3: {_state(app)} after {time.monotonic() - start:.0f} s")
