"""Helpers for the cluster tier: run the real operator process, stand in for the kubelet.

There is no kubelet in this tier, so `mark_pods_ready` does what a kubelet would report: it
patches the pods the ReplicaSet controller created to Running/Ready with an IP (a loopback
address where a real serving process listens when a test needs traffic). Everything else is
the real thing: the API server, the controller-manager's Deployment/ReplicaSet/GC controllers
and the operator as its own process (`python -m modelops.operator`).
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any, Callable

import kubernetes
import pytest

from modelops import contract
from tests.ports import free_port

ROOT = Path(__file__).resolve().parents[2]
# The session's ControlPlane, so every tier that uses the `control_plane` fixture shares one.
CONTROL_PLANE_KEY = pytest.StashKey["object"]()


def wait_for(check: Callable[[], Any], *, timeout: float = 30, interval: float = 0.2,
             what: str = "condition") -> Any:
    """Poll `check` until it returns a truthy value; fail with the last value after `timeout`."""
    deadline, last = time.monotonic() + timeout, None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}; last value: {last!r}")


class OperatorProcess:
    """`python -m modelops.operator` against the test cluster, stopped by its PID."""

    def __init__(self, kubeconfig: Path, log_path: Path, **settings: str):
        self.kubeconfig, self.log_path = kubeconfig, log_path
        self.metrics_port, self.health_port = free_port(), free_port()
        self.env = {**os.environ, "KUBECONFIG": str(kubeconfig),
                    "MODELOPS_OPERATOR_TICK_SECONDS": "1",
                    "MODELOPS_OPERATOR_METRICS_PORT": str(self.metrics_port),
                    "MODELOPS_OPERATOR_HEALTH_PORT": str(self.health_port),
                    **{f"MODELOPS_OPERATOR_{k.upper()}": v for k, v in settings.items()}}
        self.process: subprocess.Popen | None = None

    def start(self) -> "OperatorProcess":
        log = open(self.log_path, "ab")
        self.process = subprocess.Popen([sys.executable, "-m", "modelops.operator"], cwd=ROOT,
                                        env=self.env, stdout=log, stderr=subprocess.STDOUT)
        log.close()
        wait_for(self._healthy, timeout=60, what="the operator's /healthz")
        return self

    def _healthy(self) -> bool:
        if self.process.poll() is not None:
            raise AssertionError(f"operator exited with {self.process.returncode}:\n{self.log()}")
        try:
            with socket.create_connection(("127.0.0.1", self.health_port), timeout=0.5):
                return True
        except OSError:
            return False

    def kill(self) -> None:
        """SIGKILL: the operator dies mid-whatever, as on a node failure."""
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(timeout=30)

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.kill()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


class Cluster:
    """Thin typed access to the API for assertions."""

    def __init__(self, api_client: kubernetes.client.ApiClient):
        self.core = kubernetes.client.CoreV1Api(api_client)
        self.apps = kubernetes.client.AppsV1Api(api_client)
        self.custom = kubernetes.client.CustomObjectsApi(api_client)

    def model(self, namespace: str, name: str, plural: str = contract.MODEL_PLURAL) -> dict:
        return self.custom.get_namespaced_custom_object(
            contract.API_GROUP, contract.API_VERSION, namespace, plural, name)

    def create(self, namespace: str, body: dict, plural: str = contract.MODEL_PLURAL) -> dict:
        return self.custom.create_namespaced_custom_object(
            contract.API_GROUP, contract.API_VERSION, namespace, plural, body)

    def patch_spec(self, namespace: str, name: str, spec: dict,
                   plural: str = contract.MODEL_PLURAL) -> dict:
        return self.custom.patch_namespaced_custom_object(
            contract.API_GROUP, contract.API_VERSION, namespace, plural, name, {"spec": spec},
            _content_type="application/merge-patch+json")

    def condition(self, namespace: str, name: str, type_: str = "Ready",
                  plural: str = contract.MODEL_PLURAL) -> tuple[str, str] | None:
        status = self.model(namespace, name, plural).get("status") or {}
        for c in status.get("conditions") or []:
            if c["type"] == type_:
                return c["status"], c["reason"]
        return None

    def deployments(self, namespace: str, model: str) -> dict[str, Any]:
        items = self.apps.list_namespaced_deployment(
            namespace, label_selector=f"{contract.LABEL_MODEL}={model}").items
        return {d.metadata.labels[contract.LABEL_REVISION]: d for d in items}

    def service_revision(self, namespace: str, name: str) -> str | None:
        try:
            service = self.core.read_namespaced_service(name, namespace)
        except kubernetes.client.ApiException:
            return None
        return service.spec.selector.get(contract.LABEL_REVISION)

    def events(self, namespace: str, name: str, *, ours_only: bool = False) -> list[tuple[str, str]]:
        """Events about objects called `name`; with `ours_only`, only the operator's own
        (the endpoints controller also posts about a Service of that name)."""
        items = self.core.list_namespaced_event(
            namespace, field_selector=f"involvedObject.name={name}").items
        if ours_only:
            items = [e for e in items if e.reporting_component == contract.REPORTING_COMPONENT]
        return [(e.type, e.reason) for e in items]

    def wait_for_events(self, namespace: str, name: str, *wanted: tuple[str, str] | str,
                        timeout: float = 15) -> list[tuple[str, str]]:
        """The operator's Events about `name` once all `wanted` are there: (type, reason)
        pairs, or bare reasons. kopf posts Events in the background after the pass that
        wrote status and children, so a test that saw those may still be ahead of them."""
        def have() -> list[tuple[str, str]] | None:
            events = self.events(namespace, name, ours_only=True)
            reasons = {reason for _, reason in events}
            missing = [w for w in wanted if (w not in reasons if isinstance(w, str)
                                             else w not in events)]
            return None if missing else events
        return wait_for(have, timeout=timeout, what=f"Events {wanted} about {name}")

    def mark_pods_ready(self, namespace: str, model: str, revision: str,
                        ip: str = "127.0.0.1") -> int:
        """Report the revision's pods Running and Ready at `ip`, as a kubelet would."""
        return self.mark_ready(namespace, f"{contract.LABEL_MODEL}={model},"
                                          f"{contract.LABEL_REVISION}={revision}", ip)

    def mark_ready(self, namespace: str, selector: str, ip: str = "127.0.0.1") -> int:
        pods = self.core.list_namespaced_pod(namespace, label_selector=selector).items
        for pod in pods:
            self.core.patch_namespaced_pod_status(pod.metadata.name, namespace, {"status": {
                "phase": "Running", "podIP": ip, "podIPs": [{"ip": ip}],
                "conditions": [{"type": t, "status": "True"}
                               for t in ("PodScheduled", "Initialized", "ContainersReady",
                                         "Ready")],
                "containerStatuses": [{"name": "server", "ready": True, "restartCount": 0,
                                       "image": "modelops/serving", "imageID": "",
                                       "started": True,
                                       "state": {"running": {"startedAt": _now()}}}]}})
        return len(pods)

    def fail_pods(self, namespace: str, model: str, revision: str, message: str) -> int:
        """Report the revision's serving container as crashed with `message` (its termination
        message file), as a kubelet would after the serving image refused to start."""
        pods = self.core.list_namespaced_pod(
            namespace, label_selector=f"{contract.LABEL_MODEL}={model},"
                                      f"{contract.LABEL_REVISION}={revision}").items
        for pod in pods:
            terminated = {"exitCode": 1, "reason": "Error", "message": message,
                          "startedAt": _now(), "finishedAt": _now()}
            self.core.patch_namespaced_pod_status(pod.metadata.name, namespace, {"status": {
                "phase": "Running",
                "containerStatuses": [{"name": "server", "ready": False, "restartCount": 3,
                                       "image": "modelops/serving", "imageID": "",
                                       "state": {"waiting": {"reason": "CrashLoopBackOff"}},
                                       "lastState": {"terminated": terminated}}]}})
        return len(pods)


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


class ServingProcess:
    """`python -m modelops.serving` (the image's own command, under gunicorn) on a loopback
    address, with the env the operator put in a Deployment: a real stand-in for its pod."""

    def __init__(self, env: dict[str, str], ip: str, work: Path):
        work.mkdir(parents=True, exist_ok=True)
        self.ip, self.url = ip, f"http://{ip}:{contract.DEFAULT_PORT}"
        self.env = {**os.environ, **env, contract.ENV_HOST: ip,
                    contract.ENV_TERMINATION_LOG: str(work / "termination-log"),
                    contract.ENV_METRICS_DIR: str(work / "metrics")}
        (work / "metrics").mkdir(exist_ok=True)
        self.log_path = work / "serving.log"
        self.process: subprocess.Popen | None = None

    def start(self) -> "ServingProcess":
        import requests
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen([sys.executable, "-m", "modelops.serving"], cwd=ROOT,
                                            env=self.env, stdout=log, stderr=subprocess.STDOUT)

        def ready() -> bool:
            if self.process.poll() is not None:
                raise AssertionError(f"serving exited: {self.log_path.read_text()[-2000:]}")
            try:
                return requests.get(f"{self.url}{contract.PATH_READY}", timeout=1).ok
            except requests.RequestException:
                return False
        wait_for(ready, timeout=60, what=f"serving on {self.url}")
        return self

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)


def dump_artifacts(directory: Path, models: dict[str, Any], *, prefix: str = "iris"
                   ) -> dict[str, tuple[str, str]]:
    """joblib files for {version: estimator}: {version: (file:// URI, sha256)}."""
    import hashlib

    import joblib

    out = {}
    for version, model in models.items():
        path = directory / f"{prefix}-v{version}.joblib"
        joblib.dump(model, path)
        out[version] = (f"file://{path}", hashlib.sha256(path.read_bytes()).hexdigest())
    return out


def deployment_env(deployment: Any) -> dict[str, str]:
    # entries from Secrets (valueFrom, e.g. the feedback key) have no value here: left out
    return {e.name: e.value for e in deployment.spec.template.spec.containers[0].env
            if e.value is not None}


class PrometheusProcess:
    """Debian's `prometheus` scraping static loopback targets every second."""

    def __init__(self, targets: dict[str, dict[str, str]], work: Path):
        import shutil
        import yaml
        binary = shutil.which("prometheus")
        if binary is None:
            raise AssertionError("the prometheus binary is missing (apt-get install prometheus)")
        config = {"global": {"scrape_interval": "1s", "scrape_timeout": "900ms"},
                  "scrape_configs": [{"job_name": "modelops-serving", "static_configs": [
                      {"targets": [t], "labels": labels} for t, labels in targets.items()]}]}
        work.mkdir(parents=True, exist_ok=True)
        (work / "prometheus.yml").write_text(yaml.safe_dump(config))
        self.url = f"http://127.0.0.1:{free_port()}"
        with open(work / "prometheus.log", "wb") as log:
            self.process = subprocess.Popen(
                [binary, f"--config.file={work / 'prometheus.yml'}",
                 f"--storage.tsdb.path={work / 'data'}",
                 f"--web.listen-address={self.url.removeprefix('http://')}"],
                stdout=log, stderr=subprocess.STDOUT, cwd=work)
        import requests

        def ready() -> bool:
            try:
                return requests.get(f"{self.url}/-/ready", timeout=1).ok
            except requests.RequestException:
                return False
        wait_for(ready, timeout=60, what="prometheus /-/ready")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=5)


class ServiceClient:
    """A background client that talks to whichever revision a Model's Service selects, as
    kube-proxy would route it: it re-reads the Service's revision every 0.2 s and calls
    `send(session, revision, base_url)` with the serving process's URL (from `ips`), at most
    once per `period` seconds (0: back to back). Bounded by `max_seconds` whatever happens;
    use as a context manager."""

    def __init__(self, cluster: "Cluster", namespace: str, model: str, ips: dict[str, str], *,
                 period: float = 0.0, max_seconds: float = 600.0):
        import requests

        self.cluster, self.namespace, self.model, self.ips = cluster, namespace, model, ips
        self.period, self.max_seconds = period, max_seconds
        self.failures = (requests.RequestException,)
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop.set()
        self.thread.join(timeout=10)

    def send(self, session, revision: str, base: str) -> None:
        raise NotImplementedError

    def unreachable(self, revision: str) -> None:
        """The request got no HTTP answer (connection refused, timeout)."""

    def _run(self) -> None:
        import requests

        session, revision, refreshed = requests.Session(), None, 0.0
        deadline = time.monotonic() + self.max_seconds
        while not self.stop.is_set() and time.monotonic() < deadline:
            started = time.monotonic()
            if started - refreshed > 0.2:
                revision = self.cluster.service_revision(self.namespace, self.model)
                refreshed = started
            ip = self.ips.get(revision or "")
            if ip is None:
                self.stop.wait(0.05)
                continue
            try:
                self.send(session, revision, f"http://{ip}:{contract.DEFAULT_PORT}")
            except self.failures:
                self.unreachable(revision)
            self.stop.wait(max(0.0, self.period - (time.monotonic() - started)))


def stop_processes(processes: list[subprocess.Popen]) -> None:
    """SIGTERM each of our processes (last started first), then SIGKILL what is left after 15 s."""
    for process in reversed(processes):
        if process.poll() is None:
            process.terminate()
    for process in processes:
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=15)
