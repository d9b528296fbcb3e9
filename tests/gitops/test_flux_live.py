"""Flux for real (issue 15): source-controller and kustomize-controller v1.9.6, built from their
Go modules (tools/build-gitops.sh), run against the test control plane and read a Git repository
served on loopback by git's own `git http-backend` (tests/cluster/gitserver.py). A Kustomization
with `wait: true` (Flux judges the Model with kstatus) applies a Model from Git; the operator
runs as a real process; pods are reported ready by the test at a loopback address where a fake
exporter serves their /metrics.

The scenario a GitOps user lives through: v1 from Git reconciles Ready; v2 pushed to Git breaks
(50 % errors) and the operator rolls it back to v1 without writing the spec, so Flux has
nothing to re-apply: the Kustomization reports the Model's failure and its apply count stays
flat for two minutes; v3 (the fix) pushed to Git rolls out and everything is Ready again. Every process
started here is stopped by its PID.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path

import pytest
import yaml

from modelops import contract
from tests.cluster.gitserver import GitServer, Repo
from tests.cluster.support import Cluster, OperatorProcess, stop_processes, wait_for
from tests.cluster.test_ecosystem_live import POLICY, _model, _revision
from tests.factories import SHA_B, SHA_C
from tests.gitops.conftest import tool
from tests.ports import free_port
from tests.unit.ecosystem.argocd import BUILD_TIMEOUT

pytestmark = BUILD_TIMEOUT
QUIET_SECONDS = 120  # two minutes of a rolled-back Model under a 3 s Kustomization interval
FLUX = ("source-controller", "kustomize-controller")
CRDS = {"source-controller": ["gitrepositories", "ocirepositories", "buckets", "helmcharts",
                              "helmrepositories", "externalartifacts"],
        "kustomize-controller": ["kustomizations"]}
GROUPS = {"source-controller": "source.toolkit.fluxcd.io",
          "kustomize-controller": "kustomize.toolkit.fluxcd.io"}
FLUX_VERSION = "v1.9.6"


def _crd_files() -> list[str]:
    modcache = subprocess.run(["go", "env", "GOMODCACHE"], capture_output=True, text=True,
                              check=True).stdout.strip()
    return [str(Path(modcache) / "github.com" / "fluxcd" / f"{tool}@{FLUX_VERSION}" / "config"
                / "crd" / "bases" / f"{GROUPS[tool]}_{plural}.yaml")
            for tool in FLUX for plural in CRDS[tool]]


class Controllers:
    """The two Flux controllers as processes on loopback ports, stopped by their PIDs."""

    def __init__(self, kubeconfig: Path, work: Path):
        self.work, self.processes = work, {}
        (work / "artifacts").mkdir()  # source-controller refuses a storage path that is missing
        env = {**os.environ, "KUBECONFIG": str(kubeconfig), "RUNTIME_NAMESPACE": "flux-system"}
        storage = f"127.0.0.1:{free_port()}"
        args = {"source-controller": [f"--storage-path={work / 'artifacts'}",
                                      f"--storage-addr={storage}", f"--storage-adv-addr={storage}"],
                "kustomize-controller": []}
        for name in FLUX:
            argv = [str(tool(name)), *args[name], "--enable-leader-election=false",
                    f"--metrics-addr=127.0.0.1:{free_port()}",
                    f"--health-addr=127.0.0.1:{free_port()}", "--events-addr="]
            with open(work / f"{name}.log", "wb") as log:
                self.processes[name] = subprocess.Popen(argv, env=env, stdout=log,
                                                        stderr=subprocess.STDOUT)

    def check_running(self) -> None:
        for name, process in self.processes.items():
            if process.poll() is not None:
                log = (self.work / f"{name}.log").read_text(errors="replace")[-2000:]
                pytest.fail(f"{name} exited with {process.returncode}:\n{log}")

    def stop(self) -> None:
        stop_processes(list(self.processes.values()))


@pytest.fixture(scope="module")
def flux(control_plane, crds, tmp_path_factory):
    work = tmp_path_factory.mktemp("flux")
    for name in FLUX:
        tool(name)  # build first (cold: a few minutes); skipped with the reason if that fails
    control_plane.kubectl("apply", "--server-side", *[a for f in _crd_files() for a in ("-f", f)])
    control_plane.kubectl("wait", "--for=condition=Established", "--timeout=60s", *[
        f"crd/{plural}.{GROUPS[t]}" for t in FLUX for plural in CRDS[t]])
    controllers = Controllers(control_plane.kubeconfig, work)
    (work / "git").mkdir()
    git = GitServer(work / "git").start()
    operator = OperatorProcess(control_plane.kubeconfig, work / "operator.log").start()
    try:
        controllers.check_running()
        yield git, work
    finally:
        operator.stop()
        controllers.stop()
        git.stop()


def _flux_objects(ns: str, url: str) -> list[dict]:
    source = {"apiVersion": "source.toolkit.fluxcd.io/v1", "kind": "GitRepository",
              "metadata": {"name": "models", "namespace": ns},
              "spec": {"url": url, "interval": "2s", "ref": {"branch": "main"}}}
    kustomization = {"apiVersion": "kustomize.toolkit.fluxcd.io/v1", "kind": "Kustomization",
                     "metadata": {"name": "models", "namespace": ns},
                     "spec": {"interval": "3s", "path": "./models", "prune": True, "wait": True,
                              "timeout": "20s", "targetNamespace": ns,
                              "sourceRef": {"kind": "GitRepository", "name": "models"}}}
    return [source, kustomization]


def _kustomization(cluster: Cluster, ns: str) -> dict:
    return cluster.custom.get_namespaced_custom_object(
        "kustomize.toolkit.fluxcd.io", "v1", ns, "kustomizations", "models")


def _ready(obj: dict) -> tuple[str, str, str] | None:
    for c in (obj.get("status") or {}).get("conditions") or []:
        if c["type"] == "Ready":
            return c["status"], c["reason"], c.get("message", "")
    return None


def _flux_writes(model: dict) -> list[str]:
    """When kustomize-controller last wrote the Model (its managedFields entries)."""
    return sorted(f.get("time", "") for f in model["metadata"].get("managedFields") or []
                  if f.get("manager") == "kustomize-controller")


def _push(repo: Repo, version: str, **spec) -> str:
    model = _model("iris", POLICY, version=version, **spec)
    return repo.commit({"models/iris.yaml": yaml.safe_dump(model)}, f"iris {version}")


def test_flux_applies_the_operator_rolls_back_without_a_fight_and_a_fix_recovers(
        flux, control_plane, exporter, namespace):
    git, work = flux
    cluster, ns, ip = Cluster(control_plane.api_client()), namespace, exporter.server.server_address[0]
    repo = Repo(work / "git", ns, work / f"{ns}-work")
    exporter.error_share.update({("iris", "1"): 0.0, ("iris", "2"): 0.5, ("iris", "3"): 0.0})
    _push(repo, "1")
    control_plane.kubectl("apply", "-f", "-", input=json.dumps(
        {"apiVersion": "v1", "kind": "List", "items": _flux_objects(ns, git.url(ns))}))
    v1 = _revision(rollback=POLICY)
    wait_for(lambda: cluster.custom.list_namespaced_custom_object(
        contract.API_GROUP, contract.API_VERSION, ns, contract.MODEL_PLURAL)["items"],
        timeout=90, what=f"Flux to apply the Model (Kustomization: "
                         f"{_ready(_kustomization(cluster, ns))})")
    wait_for(lambda: cluster.mark_pods_ready(ns, "iris", v1, ip) == 2, timeout=90, what="v1 pods")
    wait_for(lambda: cluster.model(ns, "iris").get("status", {}).get("lastGoodVersion") == "1",
             timeout=90, what="v1 promoted")
    wait_for(lambda: (_ready(_kustomization(cluster, ns)) or ("",))[0] == "True", timeout=90,
             what="Kustomization Ready with v1")

    _push(repo, "2", sha256=SHA_B)
    v2 = _revision(version="2", sha256=SHA_B, rollback=POLICY)
    wait_for(lambda: cluster.mark_pods_ready(ns, "iris", v2, ip) == 2, timeout=90, what="v2 pods")
    wait_for(lambda: cluster.condition(ns, "iris", "Stalled") == ("True", "RolledBack"),
             timeout=90, what="v2 rolled back by the operator")
    model = cluster.model(ns, "iris")
    assert model["spec"]["version"] == "2" and model["status"]["servingVersion"] == "1"
    failed = wait_for(lambda: (r := _ready(_kustomization(cluster, ns))) and r[0] == "False" and r,
                      timeout=60, what="the Kustomization to report the Model's failure")
    print(f"\nKustomization while v2 is rolled back: {failed}")
    assert "Model/" in failed[2] and "iris" in failed[2], failed
    writes, generation = _flux_writes(model), model["metadata"]["generation"]
    time.sleep(QUIET_SECONDS)  # 40 Kustomization intervals (3 s): Flux has nothing to re-apply
    model = cluster.model(ns, "iris")
    assert (_flux_writes(model), model["metadata"]["generation"]) == (writes, generation)
    assert model["status"]["servingVersion"] == "1"

    _push(repo, "3", sha256=SHA_C)
    v3 = _revision(version="3", sha256=SHA_C, rollback=POLICY)
    wait_for(lambda: cluster.mark_pods_ready(ns, "iris", v3, ip) == 2, timeout=90, what="v3 pods")
    wait_for(lambda: cluster.model(ns, "iris")["status"].get("lastGoodVersion") == "3",
             timeout=90, what="v3 promoted")
    wait_for(lambda: (_ready(_kustomization(cluster, ns)) or ("",))[0] == "True", timeout=90,
             what="Kustomization Ready again after the fix")
    assert cluster.service_revision(ns, "iris") == v3
