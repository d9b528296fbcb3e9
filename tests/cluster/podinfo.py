"""Stand-ins for what a node does for a pod that the cluster tier has no node for.

`PodInfoFiles` plays the kubelet's downward-API volume: it re-reads one pod from the API server
every 0.2 s and rewrites its labels and annotations files in the kubelet's format (one
`key="value"` per line, value quoted like Go's %q) whenever they change. `resolve` plays cluster
DNS plus kube-proxy for the one URL a test needs: a Service's in-cluster name becomes the
loopback address of a ready pod its selector picks, so a test still proves the Service selects
the right pods.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from pathlib import Path

import kubernetes

from modelops import contract


def downward_format(values: dict[str, str]) -> str:
    return "".join(f"{key}={json.dumps(value)}\n" for key, value in sorted(values.items()))


class PodInfoFiles:
    """The labels and annotations files of pod `name`, kept current from the API server;
    `rewrite` may change the annotations before they are written (e.g. `resolve`)."""

    def __init__(self, core: kubernetes.client.CoreV1Api, namespace: str, name: str,
                 directory: Path, rewrite: Callable[[dict], dict] = lambda a: a):
        directory.mkdir(parents=True, exist_ok=True)
        self.core, self.namespace, self.name, self.rewrite = core, namespace, name, rewrite
        self.labels, self.annotations = directory / "labels", directory / "annotations"
        self._stop = threading.Event()
        self._sync()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def env(self) -> dict[str, str]:
        return {contract.ENV_POD_LABELS_FILE: str(self.labels),
                contract.ENV_POD_ANNOTATIONS_FILE: str(self.annotations)}

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def _run(self) -> None:
        while not self._stop.wait(0.2):
            try:
                self._sync()
            except Exception:  # the pod is gone or the API hiccupped: keep the last files
                continue

    def _sync(self) -> None:
        meta = self.core.read_namespaced_pod(self.name, self.namespace).metadata
        _write(self.labels, downward_format(meta.labels or {}))
        _write(self.annotations, downward_format(self.rewrite(dict(meta.annotations or {}))))


def _write(path: Path, text: str) -> None:
    if not path.exists() or path.read_text() != text:
        temporary = path.with_suffix(".tmp")
        temporary.write_text(text)
        temporary.replace(path)  # atomic, as the kubelet's symlink swap is


def resolve(core: kubernetes.client.CoreV1Api, namespace: str) -> Callable[[dict], dict]:
    """A `rewrite` mapping the shadow URL's Service to a ready pod it selects (DNS + proxy)."""
    def rewrite(annotations: dict) -> dict:
        url = annotations.get(contract.ANNOTATION_SHADOW_URL)
        if not url:
            return annotations
        host = url.removeprefix("http://").split(":")[0]
        service_name, service_namespace = host.split(".")[:2]
        if service_namespace != namespace:
            return annotations
        service = core.read_namespaced_service(service_name, namespace)
        selector = ",".join(f"{k}={v}" for k, v in sorted(service.spec.selector.items()))
        ready = [p for p in core.list_namespaced_pod(namespace, label_selector=selector).items
                 if p.status.pod_ip and any(c.type == "Ready" and c.status == "True"
                                            for c in p.status.conditions or [])]
        if not ready:
            return {k: v for k, v in annotations.items() if k != contract.ANNOTATION_SHADOW_URL}
        target = f"http://{ready[0].status.pod_ip}:{contract.DEFAULT_PORT}"
        return {**annotations, contract.ANNOTATION_SHADOW_URL: target}
    return rewrite
