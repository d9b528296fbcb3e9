"""kopf indexes: in-memory, watch-fed views of the objects the operator reads on every pass.

Passes read children from these instead of calling the API, so a pass with nothing to do makes
no request at all. Keys are (namespace, model or pipeline name); children keep only what the
passes need (a summary, and `kube.meta_of` for the ownership check), not whole objects.
`read` copes with an index that the event loop updates while a worker thread reads it. The
index functions are coroutines although they never await: kopf runs a plain function in its
thread pool, a hop per watch event that cost more than the function (bench/scale.py).
"""

from __future__ import annotations

import pickle
from typing import Any

import kopf

from modelops import contract
from modelops.operator.kube import meta_of
from modelops.operator.observe import deployment_summary, pod_summary

MODEL = (contract.API_GROUP, contract.API_VERSION, contract.MODEL_PLURAL)
PIPELINE = (contract.API_GROUP, contract.API_VERSION, contract.PIPELINE_PLURAL)
CHILD_LABELS = {contract.LABEL_MANAGED_BY: contract.MANAGED_BY, contract.LABEL_MODEL: kopf.PRESENT}
ROUTER_LABELS = {contract.LABEL_MANAGED_BY: contract.MANAGED_BY,
                 contract.LABEL_PIPELINE: kopf.PRESENT}


def detached(body: kopf.Body) -> dict:
    """A copy of the object that later watch events cannot change, without
    metadata.managedFields (no pass reads it, and it is most of an object's metadata). A pickle
    round trip: a third of copy.deepcopy's time on these plain-JSON objects."""
    obj = dict(body)
    obj["metadata"] = {k: v for k, v in (obj.get("metadata") or {}).items()
                       if k != "managedFields"}
    return pickle.loads(pickle.dumps(obj, pickle.HIGHEST_PROTOCOL))


@kopf.index(*MODEL)
async def modelops_models(namespace: str, name: str, body: kopf.Body, **_: Any) -> dict:
    return {(namespace, name): detached(body)}


@kopf.index(*PIPELINE)
async def modelops_pipelines(namespace: str, name: str, body: kopf.Body, **_: Any) -> dict:
    return {(namespace, name): detached(body)}


@kopf.index(*PIPELINE)
async def modelops_pipelines_by_model(namespace: str, name: str, spec: kopf.Spec, **_: Any) -> dict:
    """(namespace, step model) -> pipeline name, so a Model's change re-runs its pipelines."""
    steps = spec.get("steps") or []
    return {(namespace, s.get("model")): name for s in steps if isinstance(s, dict)}


@kopf.index("apps", "v1", "deployments", labels=CHILD_LABELS)
async def modelops_deployments(namespace: str, labels: kopf.Labels, body: kopf.Body,
                               **_: Any) -> dict:
    return {(namespace, labels[contract.LABEL_MODEL]): deployment_summary(body)}


@kopf.index("", "v1", "pods", labels=CHILD_LABELS)
async def modelops_pods(namespace: str, labels: kopf.Labels, body: kopf.Body, **_: Any) -> dict:
    return {(namespace, labels[contract.LABEL_MODEL]): pod_summary(body)}


@kopf.index("", "v1", "services", labels=CHILD_LABELS)
async def modelops_services(namespace: str, labels: kopf.Labels, body: kopf.Body, **_: Any) -> dict:
    return {(namespace, labels[contract.LABEL_MODEL]): {"name": body["metadata"]["name"],
                                                        **meta_of(body)}}


@kopf.index("apps", "v1", "deployments", labels=ROUTER_LABELS)
async def modelops_routers(namespace: str, labels: kopf.Labels, body: kopf.Body, **_: Any) -> dict:
    return {(namespace, labels[contract.LABEL_PIPELINE]): deployment_summary(body)}


@kopf.index("", "v1", "services", labels=ROUTER_LABELS)
async def modelops_router_services(namespace: str, labels: kopf.Labels, body: kopf.Body,
                             **_: Any) -> dict:
    return {(namespace, labels[contract.LABEL_PIPELINE]): {"name": body["metadata"]["name"],
                                                           **meta_of(body)}}


INDEXES = ("modelops_models", "modelops_pipelines", "modelops_pipelines_by_model",
           "modelops_deployments", "modelops_pods", "modelops_services", "modelops_routers",
           "modelops_router_services")


def read(index: Any, key: tuple) -> list:
    """The values under `key`, copied; retried if the event loop changed the index meanwhile."""
    for _ in range(10):
        try:
            return list(index.get(key, ()))
        except RuntimeError:  # "dictionary changed size during iteration"
            continue
    return list(index.get(key, ()))


def first(index: Any, key: tuple) -> Any | None:
    values = read(index, key)
    return values[0] if values else None
