"""kopf indexes: in-memory, watch-fed views of the objects the operator reads on every pass.

Handlers read children from these instead of calling the API, so a pass with nothing to do makes
no request at all. Keys are (namespace, model or pipeline name).
"""

from __future__ import annotations

import copy
from typing import Any

import kopf

from modelops import contract
from modelops.operator.observe import deployment_summary, pod_summary

MODEL = (contract.API_GROUP, contract.API_VERSION, contract.MODEL_PLURAL)
INDEXES = ("modelops_models", "modelops_deployments", "modelops_pods", "modelops_services")
CHILD_LABELS = {contract.LABEL_MANAGED_BY: contract.MANAGED_BY, contract.LABEL_MODEL: kopf.PRESENT}


@kopf.index(*MODEL)
def modelops_models(namespace: str, name: str, body: kopf.Body, **_: Any) -> dict:
    return {(namespace, name): copy.deepcopy(dict(body))}


@kopf.index("apps", "v1", "deployments", labels=CHILD_LABELS)
def modelops_deployments(namespace: str, labels: kopf.Labels, body: kopf.Body, **_: Any) -> dict:
    return {(namespace, labels[contract.LABEL_MODEL]): deployment_summary(body)}


@kopf.index("", "v1", "pods", labels=CHILD_LABELS)
def modelops_pods(namespace: str, labels: kopf.Labels, body: kopf.Body, **_: Any) -> dict:
    return {(namespace, labels[contract.LABEL_MODEL]): pod_summary(body)}


@kopf.index("", "v1", "services", labels=CHILD_LABELS)
def modelops_services(namespace: str, labels: kopf.Labels, body: kopf.Body, **_: Any) -> dict:
    meta = body.get("metadata", {})
    return {(namespace, labels[contract.LABEL_MODEL]): {
        "metadata": {"labels": dict(meta.get("labels") or {}),
                     "ownerReferences": [dict(o) for o in meta.get("ownerReferences") or []]},
        "spec": copy.deepcopy(dict(body.get("spec", {}))),
    }}


def first(index: Any, key: tuple) -> Any | None:
    return next(iter(index.get(key, ())), None)
