"""Helpers for tests/e2e: the cluster handle, a client pod that sends traffic from inside the
cluster (through Service DNS names and kube-proxy, the same on the dev node and on kind), and
Model manifests with artifacts shipped in ConfigMaps.
"""

from __future__ import annotations

import base64
import hashlib
import json
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from modelops import contract
from modelops.devcluster.access import ClusterAccess
from tests.cluster.support import Cluster, wait_for

CLIENT_SCRIPT = (Path(__file__).parent / "client.py").read_text()
CLIENT_POD = "e2e-client"
KIND_CLUSTER = "modelops-e2e"  # the kind flavour's cluster name


@dataclass(frozen=True)
class E2ECluster:
    """A cluster with the operator installed: `flavor` is "node" (this host) or "kind";
    `host_address` is where its pods reach servers on this host (the node's bridge address,
    or the kind Docker network's gateway)."""

    access: ClusterAccess
    flavor: str
    host_address: str

    def api(self) -> Cluster:
        return Cluster(self.access.api_client())


def service_url(model: str, namespace: str, path: str) -> str:
    return f"http://{model}.{namespace}.svc.cluster.local{path}"


def v1_predict_url(model: str, namespace: str) -> str:
    return service_url(model, namespace, f"/v1/models/{model}:predict")


class ClientPod:
    """A long-running pod with the serving image's Python; runs client.py via `kubectl exec`."""

    def __init__(self, access: ClusterAccess, namespace: str) -> None:
        self.access, self.namespace = access, namespace

    def create(self) -> ClientPod:
        pod = {
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": CLIENT_POD, "namespace": self.namespace},
            "spec": {
                "automountServiceAccountToken": False,
                "enableServiceLinks": False,
                "terminationGracePeriodSeconds": 1,
                "securityContext": {"runAsNonRoot": True, "runAsUser": contract.IMAGE_UID},
                "containers": [{
                    "name": "client", "image": contract.DEFAULT_SERVING_IMAGE,
                    "imagePullPolicy": "IfNotPresent",
                    "command": ["python", "-c", "import time; time.sleep(86400)"],
                }],
            },
        }
        self.access.kubectl("apply", "-f", "-", input=json.dumps(pod))
        self.access.kubectl("wait", "--for=condition=Ready", f"pod/{CLIENT_POD}",
                            "-n", self.namespace, "--timeout=180s", timeout=200)
        return self

    def predict(self, url: str, body: dict) -> tuple[int, Any]:
        """One POST from inside the cluster: (status, parsed body)."""
        result = self.access.kubectl(*self._exec("predict", url, json.dumps(body)), timeout=60)
        answer = json.loads(result.stdout.strip().splitlines()[-1])
        return answer["status"], answer["body"]

    def start_load(self, url: str, *, concurrency: int, max_seconds: float,
                   bad_share: float = 0.0) -> Load:
        argv = [str(self.access.bin_dir / "kubectl"), f"--kubeconfig={self.access.kubeconfig}",
                *self._exec("load", url, str(concurrency), str(max_seconds), str(bad_share),
                            stdin=True)]
        process = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                   stderr=subprocess.PIPE, text=True)
        return Load(process, max_seconds)

    def start_keepalive(self, host: str, path: str, *, concurrency: int,
                        max_seconds: float, bad_share: float = 0.0) -> Load:
        """Persistent-connection v2 traffic (client.py `keepalive`); stop() returns answers."""
        argv = [str(self.access.bin_dir / "kubectl"), f"--kubeconfig={self.access.kubeconfig}",
                *self._exec("keepalive", host, path, str(concurrency), str(max_seconds),
                            str(bad_share), stdin=True)]
        process = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                   stderr=subprocess.PIPE, text=True)
        return Load(process, max_seconds)

    def feedback(self, base: str, model: str, *, count: int, concurrency: int,
                 keep: int) -> dict:
        """Predictions each followed by its label (client.py `feedback`); see its docstring."""
        result = self.access.kubectl(*self._exec("feedback", base, model, str(count),
                                                 str(concurrency), str(keep)), timeout=600)
        return _counts(json.loads(result.stdout.strip().splitlines()[-1]))

    def score(self, base: str, model: str, labels: list) -> dict:
        """Feedback for (token, truth) pairs kept earlier (client.py `score`)."""
        result = self.access.kubectl(*self._exec("score", base, model, stdin=True),
                                     input=json.dumps(labels), timeout=300)
        return _counts(json.loads(result.stdout.strip().splitlines()[-1]))

    def wait_routable(self, url: str, *, timeout: float = 30.0) -> float:
        """Seconds until `url` gives any HTTP answer (client.py `routable`); raises after
        `timeout`. Ready says the pods are; kube-proxy programs a new Service's endpoints on
        its own clock, so traffic measured from a test starts after this."""
        result = self.access.kubectl(*self._exec("routable", url, str(timeout)),
                                     timeout=timeout + 60)
        answer = json.loads(result.stdout.strip().splitlines()[-1])
        if not answer["status"]:
            raise AssertionError(f"{url} refused connections for {timeout} s: {answer}")
        return answer["seconds"]

    def connect(self, host: str, port: int, *, timeout: float) -> dict:
        """One TCP connect from the pod (client.py `connect`): its error name and seconds."""
        result = self.access.kubectl(*self._exec("connect", host, str(port), str(timeout)),
                                     timeout=timeout + 60)
        return json.loads(result.stdout.strip().splitlines()[-1])

    def _exec(self, *args: str, stdin: bool = False) -> list[str]:
        flags = ["-i"] if stdin else []
        return ["exec", *flags, "-n", self.namespace, CLIENT_POD, "--",
                "python", "-c", CLIENT_SCRIPT, *args]


class Load:
    """Traffic running in the client pod; `stop()` closes its stdin and returns the counts."""

    def __init__(self, process: subprocess.Popen, max_seconds: float) -> None:
        self.process, self.max_seconds = process, max_seconds

    def stop(self) -> dict:
        # communicate() closes stdin, which tells the generator to finish and print its counts.
        out, err = self.process.communicate(input="", timeout=self.max_seconds + 60)
        if self.process.returncode != 0 or not out.strip():
            raise AssertionError(f"load generator failed ({self.process.returncode}): {err}")
        result = json.loads(out.strip().splitlines()[-1])
        result["codes"] = {int(code): n for code, n in result["codes"].items()}
        return result


def _counts(result: dict) -> dict:
    for key in ("infer", "feedback"):
        if key in result:
            result[key] = {int(code): n for code, n in result[key].items()}
    return result


def wait_serving(e2e_cluster: E2ECluster, client: ClientPod, namespace: str, name: str, *,
                 plural: str = contract.MODEL_PLURAL, service: str | None = None,
                 reason: str | None = None, timeout: float = 240) -> float:
    """Wait for the object's Ready=True (with `reason`, when given), then for its Service
    (`service`, default its own name) to route; returns the seconds the Service took to route
    after Ready, a figure tests print."""
    api = e2e_cluster.api()

    def ready() -> bool:
        status, why = api.condition(namespace, name, "Ready", plural) or ("", "")
        return status == "True" and reason in (None, why)
    wait_for(ready, timeout=timeout, interval=1, what=f"{name} Ready")
    lag = client.wait_routable(service_url(service or name, namespace, "/v2/health/live"))
    print(f"\n{service or name}: Service routed {lag:.2f} s after Ready")
    return lag


def artifact_configmap(name: str, files: dict[str, bytes]) -> dict:
    """A ConfigMap carrying binary artifacts (a Model reads configMap://<name>/<key>)."""
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name},
            "binaryData": {key: base64.b64encode(data).decode() for key, data in files.items()}}


def model_manifest(name: str, version: str, uri: str, sha256: str, *, replicas: int = 1,
                   rollback: dict | None = None, serving: dict | None = None,
                   rollout: dict | None = None) -> dict:
    spec: dict[str, Any] = {
        "version": version,
        "artifact": {"uri": uri, "sha256": sha256, "format": "joblib"},
        "replicas": replicas,
        "resources": {"requests": {"cpu": "50m", "memory": "128Mi"}},
    }
    if rollback:
        spec["rollback"] = rollback
    if serving:
        spec["serving"] = serving
    if rollout:
        spec["rollout"] = rollout
    return {"apiVersion": contract.API_GROUP_VERSION, "kind": contract.MODEL_KIND,
            "metadata": {"name": name}, "spec": spec}


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def apply(access: ClusterAccess, namespace: str, *objects: dict) -> None:
    body = {"apiVersion": "v1", "kind": "List", "items": list(objects)}
    access.kubectl("apply", "-n", namespace, "-f", "-", input=json.dumps(body))


def pods(access: ClusterAccess, namespace: str, selector: str) -> list[dict]:
    out = access.kubectl("get", "pods", "-n", namespace, "-l", selector, "-o", "json").stdout
    return json.loads(out)["items"]


def deploy_v1(e2e_cluster: E2ECluster, namespace: str, artifacts: dict[str, bytes], name: str,
              *, replicas: int = 1, rollback: dict | None = None) -> dict:
    """The ConfigMap of `artifacts` and Model `name` at version 1 (good.joblib), serving and
    promoted (a 5 s bake window), so it is the last good version a later one falls back to."""
    apply(e2e_cluster.access, namespace, artifact_configmap("artifacts", artifacts))
    v1 = model_manifest(name, "1", "configMap://artifacts/good.joblib",
                        sha256_hex(artifacts["good.joblib"]), replicas=replicas,
                        rollback={**(rollback or {}), "bakeWindow": "5s"})
    apply(e2e_cluster.access, namespace, v1)
    api = e2e_cluster.api()
    wait_for(lambda: (api.model(namespace, name).get("status") or {}).get("lastGoodVersion") == "1"
             and (api.condition(namespace, name, "Ready") or ("",))[0] == "True",
             timeout=240, interval=1, what=f"{name} v1 serving and promoted")
    return v1
