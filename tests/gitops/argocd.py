"""Argo CD v3.6.1 as processes on loopback for tests/gitops: Redis, repo-server, controller.

`ArgoCD.start(kubeconfig, work)` installs what the controller reads in namespace `argocd` (the
Application and AppProject CRDs from the argo-cd module in GOMODCACHE, `argocd-cm` with the
modelops health checks of deploy/argocd/argocd-cm.yaml, empty argocd-secret/argocd-rbac-cm/...,
the `default` AppProject), then runs `redis-server` (Debian's, nothing persisted) and the
`argocd` binary under its names argocd-repo-server and argocd-application-controller, all on
127.0.0.1 ports. The in-cluster destination https://kubernetes.default.svc is the controller's
own KUBECONFIG (ARGOCD_FAKE_IN_CLUSTER). `stop` ends every process by its PID.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from tests.cluster.support import stop_processes, wait_for
from tests.ports import free_port
from tests.unit.ecosystem.gitops_tools import ARGOCD_CM

NAMESPACE = "argocd"
VERSION = "v3.6.1"
GROUP, API = "argoproj.io", "v1alpha1"
CRDS = ("application-crd.yaml", "appproject-crd.yaml")
RESYNC_SECONDS = 3  # how often the controller compares each Application with Git
EMPTY_CONFIGMAPS = ("argocd-rbac-cm", "argocd-cmd-params-cm", "argocd-tls-certs-cm",
                    "argocd-ssh-known-hosts-cm", "argocd-gpg-keys-cm")


def module_dir() -> Path:
    """The argo-cd module in GOMODCACHE (tools/build-gitops.sh argocd downloaded it)."""
    modcache = subprocess.run(["go", "env", "GOMODCACHE"], capture_output=True, text=True,
                              check=True).stdout.strip()
    return Path(modcache) / "github.com" / "argoproj" / "argo-cd" / f"v3@{VERSION}"


def crd_files() -> list[str]:
    return [str(module_dir() / "manifests" / "crds" / name) for name in CRDS]


def _helpers(bin_dir: Path) -> Path:
    """Argo CD's image has hack/git-verify-wrapper.sh on PATH; the repo-server runs it for every
    revision (and answers "permission denied" when it is missing). The module's copy is
    read-only, so it is copied here with the executable bit."""
    bin_dir.mkdir(exist_ok=True)
    wrapper = bin_dir / "git-verify-wrapper.sh"
    shutil.copyfile(module_dir() / "hack" / wrapper.name, wrapper)
    wrapper.chmod(0o755)
    return bin_dir


def _meta(name: str) -> dict:
    return {"name": name, "namespace": NAMESPACE,
            "labels": {"app.kubernetes.io/name": name, "app.kubernetes.io/part-of": "argocd"}}


def settings_objects() -> list[dict]:
    """What the controller and repo-server read from namespace argocd."""
    cm = yaml.safe_load(ARGOCD_CM.read_text())
    project = {"apiVersion": f"{GROUP}/{API}", "kind": "AppProject", "metadata": _meta("default"),
               "spec": {"sourceRepos": ["*"], "destinations": [{"server": "*", "namespace": "*"}],
                        "clusterResourceWhitelist": [{"group": "*", "kind": "*"}]}}
    return [{"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE}}, cm,
            {"apiVersion": "v1", "kind": "Secret", "metadata": _meta("argocd-secret")},
            *({"apiVersion": "v1", "kind": "ConfigMap", "metadata": _meta(name)}
              for name in EMPTY_CONFIGMAPS), project]


def application(name: str, url: str, namespace: str) -> dict:
    """An Application syncing ./models of `url`'s main into `namespace`: automated, selfHeal, prune."""
    return {"apiVersion": f"{GROUP}/{API}", "kind": "Application", "metadata": _meta(name),
            "spec": {"project": "default",
                     "source": {"repoURL": url, "path": "models", "targetRevision": "main"},
                     "destination": {"server": "https://kubernetes.default.svc",
                                     "namespace": namespace},
                     "syncPolicy": {"automated": {"prune": True, "selfHeal": True}}}}


@dataclass
class ArgoCD:
    """Redis, repo-server and application-controller, each a process on loopback."""

    bin_dir: Path
    redis: str
    work: Path
    processes: dict[str, subprocess.Popen] = field(default_factory=dict)

    def start(self, kubeconfig: Path) -> ArgoCD:
        redis_port, repo_port = free_port(), free_port()
        redis = f"127.0.0.1:{redis_port}"
        (self.work / "tmp").mkdir()
        env = {**os.environ, "KUBECONFIG": str(kubeconfig), "ARGOCD_FAKE_IN_CLUSTER": "true",
               "ARGOCD_GPG_ENABLED": "false", "TMPDIR": str(self.work / "tmp"),
               "HOME": str(self.work),
               "PATH": f"{_helpers(self.work / 'bin')}{os.pathsep}{os.environ.get('PATH', '')}"}
        self._run("redis", [self.redis, "--port", str(redis_port), "--bind", "127.0.0.1",
                            "--save", "", "--appendonly", "no"], env)
        self._run("argocd-repo-server", [
            str(self.bin_dir / "argocd-repo-server"), "--address", "127.0.0.1",
            "--port", str(repo_port), "--metrics-address", "127.0.0.1", "--client-ca-path", "",
            "--metrics-port", str(free_port()), "--disable-tls", "--redis", redis,
            "--revision-cache-expiration", "1s"], env)
        self._run("argocd-application-controller", [
            str(self.bin_dir / "argocd-application-controller"), "--namespace", NAMESPACE,
            "--redis", redis, "--repo-server", f"127.0.0.1:{repo_port}",
            "--repo-server-plaintext", "--metrics-port", str(free_port()),
            "--app-resync", str(RESYNC_SECONDS), "--app-resync-jitter", "0",
            "--status-processors", "2", "--operation-processors", "2",
            "--persist-resource-health"], env)  # resource health (our message) in the Application
        return self

    def _run(self, name: str, argv: list[str], env: dict[str, str]) -> None:
        with open(self.work / f"{name}.log", "wb") as log:
            self.processes[name] = subprocess.Popen(argv, env=env, stdout=log,
                                                    stderr=subprocess.STDOUT, cwd=self.work)

    def exited(self) -> str:
        """The first process that has exited, with its log's tail; empty while all run."""
        for name, process in self.processes.items():
            if process.poll() is not None:
                tail = (self.work / f"{name}.log").read_text(errors="replace")[-3000:]
                return f"{name} exited with {process.returncode}:\n{tail}"
        return ""

    def log(self, name: str) -> str:
        return (self.work / f"{name}.log").read_text(errors="replace")

    def stop(self) -> None:
        stop_processes(list(self.processes.values()))


def install(control_plane) -> None:
    """The CRDs (Established) and the settings objects."""
    control_plane.kubectl("apply", "--server-side", *[a for f in crd_files() for a in ("-f", f)])
    wait_for(lambda: control_plane.kubectl(  # a CRD just created may have no conditions yet
        "wait", "--for=condition=Established", "--timeout=10s", f"crd/applications.{GROUP}",
        f"crd/appprojects.{GROUP}", check=False).returncode == 0, timeout=60,
        what="the Argo CD CRDs to be Established")
    control_plane.kubectl("apply", "-f", "-", input=json.dumps(
        {"apiVersion": "v1", "kind": "List", "items": settings_objects()}))


def wait_running(argocd: ArgoCD, seconds: float = 3) -> None:
    """Fail early when a process dies at start (a bad flag, a port taken)."""
    time.sleep(seconds)
    if argocd.exited():
        raise AssertionError(argocd.exited())
