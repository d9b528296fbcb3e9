"""Pure builders of the child objects the operator owns: plain dicts in, plain dicts out.

Children never carry `app.kubernetes.io/instance`: Argo CD's default tracking label would make
them look like members of an Application named after the Model, and prunable.

`build_deployment` makes one version's serving Deployment, `build_service` the Model's Service
(selecting the serving revision), and `build_router_*` the ModelPipeline's router. No API calls,
no kopf context, no environment: everything comes in as arguments, so tests compare with `==`.
Ownership is added by the caller (`kopf.adopt`).
"""

from __future__ import annotations

import json
from typing import Any

from modelops import contract as c
from modelops.operator import artifact_sources
from modelops.operator.spec import ModelSpec, PipelineSpec

SERVICE_PORT = 80
# On deletion a pod first sleeps PRE_STOP_SECONDS while it still serves (kube-proxy and the
# endpoints need that long to stop sending it new connections), then gets SIGTERM and
# GRACEFUL_SECONDS for in-flight requests, all inside the pod's grace period.
PRE_STOP_SECONDS = 5
GRACEFUL_SECONDS = 20
TERMINATION_GRACE_SECONDS = 30


SCRATCH_SIZE_LIMIT = "512Mi"  # metrics files + feedback seen-set (~100 B a token, 1M by default)


def feedback_secret_name(model: str) -> str:
    return f"{model[:244]}-feedback"


def build_feedback_secret(model: str, key: str) -> dict:
    """The Model's feedback HMAC key; created once (never updated) with a random `key`."""
    return {"apiVersion": "v1", "kind": "Secret", "type": "Opaque",
            "metadata": {"name": feedback_secret_name(model),
                         "labels": {c.LABEL_MANAGED_BY: c.MANAGED_BY, c.LABEL_PART_OF: "modelops",
                                    c.LABEL_MODEL: model}},
            "stringData": {c.FEEDBACK_SECRET_KEY: key}}


def feedback_key_env(model: str) -> dict:
    return {"name": c.ENV_FEEDBACK_KEY, "valueFrom": {"secretKeyRef": {
        "name": feedback_secret_name(model), "key": c.FEEDBACK_SECRET_KEY}}}


def deployment_name(model: str, revision: str) -> str:
    return f"{model[:52]}-{revision}"


def router_name(pipeline: str) -> str:
    return f"{pipeline[:56]}-router"


def service_host(name: str, namespace: str, domain: str = "cluster.local") -> str:
    return f"{name}.{namespace}.svc.{domain}"


def model_labels(model: str, spec: ModelSpec) -> dict[str, str]:
    return {
        c.LABEL_NAME: "modelops-serving",
        c.LABEL_VERSION_APP: spec.version,
        c.LABEL_COMPONENT: "model",
        c.LABEL_PART_OF: "modelops",
        c.LABEL_MANAGED_BY: c.MANAGED_BY,
        c.LABEL_MODEL: model,
        c.LABEL_VERSION: spec.version,
        c.LABEL_REVISION: spec.revision,
    }


def build_deployment(model: str, spec: ModelSpec, *, image: str,
                     pull_policy: str = "IfNotPresent", replicas: int | None = None) -> dict:
    """One version's serving Deployment; `replicas` overrides spec.replicas (warm/scaled-down)."""
    labels = model_labels(model, spec)
    selector = {c.LABEL_MODEL: model, c.LABEL_REVISION: spec.revision}
    env = _model_env(model, spec)
    volumes, mounts, init_containers = _artifact_delivery(spec, image, pull_policy, env)
    container = _server_container(spec, image, pull_policy, env, mounts)
    container["env"].append(feedback_key_env(model))
    volumes.append(_with_pod_labels(container))
    pod_spec: dict[str, Any] = {
        "terminationGracePeriodSeconds": TERMINATION_GRACE_SECONDS,
        "automountServiceAccountToken": False,
        "enableServiceLinks": False,
        "securityContext": _pod_security(),
        "containers": [container],
        "volumes": [{"name": "scratch", "emptyDir": {"sizeLimit": SCRATCH_SIZE_LIMIT}}, *volumes],
    }
    if init_containers:
        pod_spec["initContainers"] = init_containers
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": deployment_name(model, spec.revision), "labels": labels},
        "spec": {
            "replicas": spec.replicas if replicas is None else replicas,
            "progressDeadlineSeconds": spec.rollback.progress_deadline_seconds,
            "revisionHistoryLimit": 2,
            "selector": {"matchLabels": selector},
            "template": {
                "metadata": {"labels": labels, "annotations": _scrape_annotations()},
                "spec": pod_spec,
            },
        },
    }


def build_service(model: str, *, revision: str, version: str) -> dict:
    """The Model's Service: its selector names the serving revision (rollback = change it)."""
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {
            "name": model,
            "labels": {c.LABEL_NAME: "modelops-serving",
                       c.LABEL_MANAGED_BY: c.MANAGED_BY, c.LABEL_PART_OF: "modelops",
                       c.LABEL_MODEL: model, c.LABEL_VERSION: version},
        },
        "spec": {
            "type": "ClusterIP",
            "selector": {c.LABEL_MODEL: model, c.LABEL_REVISION: revision},
            "ports": [{"name": c.PORT_NAME, "port": SERVICE_PORT, "targetPort": c.PORT_NAME,
                       "protocol": "TCP"}],
        },
    }


def build_router_deployment(pipeline: str, namespace: str, spec: PipelineSpec, *, image: str,
                            pull_policy: str = "IfNotPresent",
                            domain: str = "cluster.local") -> dict:
    """The ModelPipeline's router: the serving image in pipeline mode, calling step Services."""
    labels = _router_labels(pipeline)
    steps = [{"name": s.name, "model": s.model, "input": s.input,
              "url": f"http://{service_host(s.model, namespace, domain)}:{SERVICE_PORT}"}
             for s in spec.steps]
    env = {
        c.ENV_MODE: "pipeline",
        c.ENV_PIPELINE_NAME: pipeline,
        c.ENV_PIPELINE_STEPS: json.dumps(steps, separators=(",", ":")),
        c.ENV_PIPELINE_TIMEOUT: str(spec.timeout_seconds),
        c.ENV_PORT: str(c.DEFAULT_PORT),
        c.ENV_GRACEFUL_TIMEOUT: str(GRACEFUL_SECONDS),
        c.ENV_TERMINATION_LOG: c.DEFAULT_TERMINATION_LOG,
    }
    container = _server_container_base(spec.image or image, pull_policy, env,
                                       [{"name": "scratch", "mountPath": c.SCRATCH_MOUNT}])
    container["name"] = "router"
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": router_name(pipeline), "labels": labels},
        "spec": {
            "replicas": spec.replicas,
            "revisionHistoryLimit": 2,
            "selector": {"matchLabels": {c.LABEL_PIPELINE: pipeline}},
            "template": {
                "metadata": {"labels": labels, "annotations": _scrape_annotations()},
                "spec": {
                    "terminationGracePeriodSeconds": TERMINATION_GRACE_SECONDS,
                    "automountServiceAccountToken": False,
                    "enableServiceLinks": False,
                    "securityContext": _pod_security(),
                    "containers": [container],
                    "volumes": [{"name": "scratch", "emptyDir": {}}],
                },
            },
        },
    }


def build_router_service(pipeline: str) -> dict:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": router_name(pipeline), "labels": _router_labels(pipeline)},
        "spec": {
            "type": "ClusterIP",
            "selector": {c.LABEL_PIPELINE: pipeline},
            "ports": [{"name": c.PORT_NAME, "port": SERVICE_PORT, "targetPort": c.PORT_NAME,
                       "protocol": "TCP"}],
        },
    }


def _router_labels(pipeline: str) -> dict[str, str]:
    return {c.LABEL_NAME: "modelops-router",
            c.LABEL_COMPONENT: "router", c.LABEL_PART_OF: "modelops",
            c.LABEL_MANAGED_BY: c.MANAGED_BY, c.LABEL_PIPELINE: pipeline}


def _model_env(model: str, spec: ModelSpec) -> dict[str, str]:
    env = {
        c.ENV_MODE: "model",
        c.ENV_MODEL_NAME: model,
        c.ENV_MODEL_VERSION: spec.version,
        c.ENV_ARTIFACT_URI: spec.artifact.uri,
        c.ENV_ARTIFACT_SHA256: spec.artifact.sha256,
        c.ENV_METHOD: spec.method,
        c.ENV_PORT: str(c.DEFAULT_PORT),
        c.ENV_WORKERS: str(spec.serving.workers),
        # a batch can only group as many requests as the worker has threads
        c.ENV_THREADS: str(max(spec.serving.threads, spec.serving.batch_max_size)),
        c.ENV_BATCH_MAX_SIZE: str(spec.serving.batch_max_size),
        c.ENV_BATCH_MAX_WAIT_MS: str(spec.serving.batch_max_wait_ms),
        c.ENV_TERMINATION_LOG: c.DEFAULT_TERMINATION_LOG,
        c.ENV_GRACEFUL_TIMEOUT: str(GRACEFUL_SECONDS),
    }
    if spec.artifact.format:
        env[c.ENV_ARTIFACT_FORMAT] = spec.artifact.format
    if spec.artifact.trusted_types:
        env[c.ENV_SKOPS_TRUSTED_TYPES] = ",".join(spec.artifact.trusted_types)
    if spec.artifact.version_policy:
        env[c.ENV_SKLEARN_VERSION_POLICY] = spec.artifact.version_policy
    if spec.artifact.scheme != "file":
        env[c.ENV_ARTIFACT_DIR] = c.ARTIFACT_MOUNT
    env.update(artifact_sources.source_env(spec.artifact))
    return env


def _artifact_delivery(spec: ModelSpec, image: str, pull_policy: str, env: dict[str, str]):
    """Volumes, main-container mounts and init containers that put the artifact in the pod."""
    scheme = spec.artifact.scheme
    mounts = [{"name": "scratch", "mountPath": c.SCRATCH_MOUNT}]
    if scheme == "file":
        return [], mounts, []
    mounts.append({"name": "artifact", "mountPath": c.ARTIFACT_MOUNT, "readOnly": True})
    if scheme == "pvc":
        claim = spec.artifact.volume_source[1]
        return [{"name": "artifact", "persistentVolumeClaim":
                 {"claimName": claim, "readOnly": True}}], mounts, []
    if scheme == "configMap":
        name = spec.artifact.volume_source[1]
        return [{"name": "artifact", "configMap": {"name": name}}], mounts, []
    # http(s), s3, models: an init container downloads and verifies into an emptyDir
    fetch = _server_container(spec, image, pull_policy, env, [
        {"name": "scratch", "mountPath": c.SCRATCH_MOUNT},
        {"name": "artifact", "mountPath": c.ARTIFACT_MOUNT}])
    fetch.update(name="fetch", command=list(c.FETCH_COMMAND))
    for key in ("startupProbe", "readinessProbe", "livenessProbe", "ports", "lifecycle"):
        fetch.pop(key)
    fetch["env"] += artifact_sources.secret_env(spec.artifact)  # only the init container
    volumes = [{"name": "artifact", "emptyDir": {}}]
    ca = artifact_sources.ca_volume(spec.artifact)
    if ca is not None:
        volumes.append(ca[0])
        fetch["volumeMounts"].append(ca[1])
    return volumes, mounts, [fetch]


def _server_container(spec: ModelSpec, image: str, pull_policy: str, env: dict[str, str],
                      mounts: list[dict]) -> dict:
    container = _server_container_base(spec.image or image, pull_policy, env, mounts)
    if spec.resources:
        container["resources"] = dict(spec.resources)
    return container


def _server_container_base(image: str, pull_policy: str, env: dict[str, str],
                           mounts: list[dict]) -> dict:
    port = c.PORT_NAME
    return {
        "name": "server",
        "image": image,
        "imagePullPolicy": pull_policy,
        "command": list(c.SERVING_COMMAND),
        "env": _env_list(env),
        "ports": [{"name": port, "containerPort": c.DEFAULT_PORT, "protocol": "TCP"}],
        # startup covers artifact download + model loading (up to 5 minutes)
        "startupProbe": _http_probe(c.PATH_READY, period=2, failures=150),
        "readinessProbe": _http_probe(c.PATH_READY, period=5, failures=3),
        "livenessProbe": _http_probe(c.PATH_LIVE, period=10, failures=3),
        "securityContext": {
            "allowPrivilegeEscalation": False,
            "readOnlyRootFilesystem": True,
            "runAsNonRoot": True,
            "capabilities": {"drop": ["ALL"]},
        },
        "lifecycle": {"preStop": {"sleep": {"seconds": PRE_STOP_SECONDS}}},
        "terminationMessagePath": c.DEFAULT_TERMINATION_LOG,
        "terminationMessagePolicy": "FallbackToLogsOnError",
        "volumeMounts": mounts,
    }


def _with_pod_labels(container: dict) -> dict:
    """Mount the pod's own labels and annotations (downward API) so the server sees its role
    label, set by the operator when the revision leaves service (serving/handover.py), and the
    shadow annotations, set while a candidate is in shadow (serving/shadow.py); returns the
    volume."""
    container["volumeMounts"].append({"name": "podinfo", "mountPath": c.PODINFO_MOUNT,
                                      "readOnly": True})
    container["env"].append({"name": c.ENV_POD_LABELS_FILE, "value": f"{c.PODINFO_MOUNT}/labels"})
    container["env"].append({"name": c.ENV_POD_ANNOTATIONS_FILE,
                             "value": f"{c.PODINFO_MOUNT}/annotations"})
    return {"name": "podinfo", "downwardAPI": {"items": [
        {"path": "labels", "fieldRef": {"fieldPath": "metadata.labels"}},
        {"path": "annotations", "fieldRef": {"fieldPath": "metadata.annotations"}}]}}


def _http_probe(path: str, *, period: int, failures: int) -> dict:
    return {"httpGet": {"path": path, "port": c.PORT_NAME}, "periodSeconds": period,
            "failureThreshold": failures, "timeoutSeconds": 2}


def _pod_security() -> dict:
    return {"runAsNonRoot": True, "runAsUser": c.IMAGE_UID, "runAsGroup": c.IMAGE_UID,
            "fsGroup": c.IMAGE_UID, "seccompProfile": {"type": "RuntimeDefault"}}


def _scrape_annotations() -> dict[str, str]:
    return {"prometheus.io/scrape": "true", "prometheus.io/port": str(c.DEFAULT_PORT),
            "prometheus.io/path": c.PATH_METRICS}


def _env_list(env: dict[str, str]) -> list[dict[str, str]]:
    return [{"name": name, "value": value} for name, value in sorted(env.items())]
