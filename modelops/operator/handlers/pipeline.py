"""ModelPipeline handlers: run the router (the serving image in pipeline mode) and its Service,
and report the pipeline Ready only when the router and every step's Model are Ready.
Passes run on every watch event of the pipeline and every tick (step Models change status
without touching the pipeline).

Step Models are read from the Model index, so a step whose Model is deleted is reported
(`StepModelMissing`) instead of failing the pass, and a step Model that is Stalled (rolled back,
artifact refused) stalls the pipeline too (`StepStalled`), so GitOps tools stop waiting.
"""

from __future__ import annotations

import copy
import logging
import threading
import time
from collections import defaultdict
from typing import Any, Mapping

import kopf
from kubernetes.client.rest import ApiException

from modelops import contract
from modelops.operator import kube
from modelops.operator.builders import (build_router_deployment, build_router_service,
                                        router_name, service_host)
from modelops.operator.conditions import (FALSE, READY, RECONCILING, STALLED, TRUE, apply_all,
                                          get_condition, pipeline_ready)
from modelops.operator.handlers.indexes import first
from modelops.operator.handlers.lifecycle import SETTINGS
from modelops.operator.observe import deployment_summary
from modelops.operator.rollout import iso
from modelops.operator.spec import PipelineSpec, SpecError, parse_pipeline
from modelops.operator.ticker import Ticker

PIPELINE = (contract.API_GROUP, contract.API_VERSION, contract.PIPELINE_PLURAL)
ROUTER_LABELS = {contract.LABEL_MANAGED_BY: contract.MANAGED_BY,
                 contract.LABEL_PIPELINE: kopf.PRESENT}
log = logging.getLogger(__name__)
_locks: dict[str, threading.Lock] = defaultdict(threading.Lock)


@kopf.index("apps", "v1", "deployments", labels=ROUTER_LABELS)
def modelops_routers(namespace: str, labels: kopf.Labels, body: kopf.Body, **_: Any) -> dict:
    return {(namespace, labels[contract.LABEL_PIPELINE]): deployment_summary(body)}


@kopf.index("", "v1", "services", labels=ROUTER_LABELS)
def modelops_router_services(namespace: str, labels: kopf.Labels, body: kopf.Body,
                             **_: Any) -> dict:
    meta = body.get("metadata", {})
    return {(namespace, labels[contract.LABEL_PIPELINE]): {
        "metadata": {"labels": dict(meta.get("labels") or {}),
                     "ownerReferences": [dict(o) for o in meta.get("ownerReferences") or []]},
        "spec": copy.deepcopy(dict(body.get("spec", {})))}}


INDEXES = ("modelops_models", "modelops_routers", "modelops_router_services")


def _tick_pipeline(body: Mapping[str, Any], indexes: Mapping[str, Any]) -> None:
    reconcile_pipeline(body, indexes, log)


TICKER = Ticker("pipelines", SETTINGS.tick_seconds, 4, _tick_pipeline)


@kopf.on.cleanup()
def stop_pipelines_ticker(**_: Any) -> None:
    TICKER.stop()


@kopf.on.event(*PIPELINE)
def on_pipeline_event(type: str, body: kopf.Body, logger: logging.Logger, **kwargs: Any) -> None:
    uid = body["metadata"]["uid"]
    if type == "DELETED":
        TICKER.forget(uid)
        _locks.pop(uid, None)
        return
    indexes = {name: kwargs[name] for name in INDEXES}
    TICKER.track(uid, copy.deepcopy(dict(body)), indexes)
    reconcile_pipeline(body, indexes, logger)


def reconcile_pipeline(body: Mapping[str, Any], indexes: Mapping[str, Any],
                       logger: logging.Logger) -> None:
    meta = body["metadata"]
    if meta.get("deletionTimestamp"):
        return
    with _locks[meta["uid"]]:
        key = (meta["namespace"], meta["name"])
        status = dict(body.get("status") or {})
        try:
            spec = parse_pipeline(body.get("spec") or {})
        except SpecError as error:
            _write(body, status, _invalid(status, str(error), meta["generation"]))
            return
        router = first(indexes["modelops_routers"], key)
        new = _pipeline_status(key, spec, status, router, indexes["modelops_models"],
                               meta["generation"])
        if not _write(body, status, new) or spec.suspend:
            return
        try:
            _apply_router(body, spec, router, indexes, logger)
        except ApiException as error:  # retried on the next event or tick
            logger.warning(f"Router not reconciled yet: {error.status} {error.reason}: "
                           f"{kube.error_message(error)}")
        before, after = get_condition(status.get("conditions") or [], READY), \
            get_condition(new["conditions"], READY)
        if (before or {}).get("status") != after["status"]:
            kopf.event(body, type="Normal" if after["status"] == TRUE else "Warning",
                       reason=after["reason"], message=after["message"])


def _pipeline_status(key: tuple[str, str], spec: PipelineSpec, status: Mapping[str, Any],
                     router: Mapping[str, Any] | None, models: Any, generation: int) -> dict:
    namespace, name = key
    steps = [_step_status(namespace, step.name, step.model, models) for step in spec.steps]
    ready = pipeline_ready(steps)
    router_ready = bool(router and router["updated"] and router["ready"] >= router["replicas"] > 0)
    if ready[0] == TRUE and not router_ready:
        ready = (FALSE, "RouterNotReady", f"router {router_name(name)} has no ready pod yet")
    blocked = ready[1] in ("StepModelMissing", "StepStalled")
    reconciling = None if ready[0] == TRUE or blocked else (TRUE, ready[1], ready[2])
    stalled = (TRUE if blocked else FALSE, ready[1], ready[2])
    conditions = apply_all(status.get("conditions") or [],
                           {READY: ready, RECONCILING: reconciling, STALLED: stalled},
                           now=iso(time.time()), generation=generation)
    host = service_host(router_name(name), namespace, SETTINGS.cluster_domain)
    return {**status, "observedGeneration": generation, "conditions": conditions,
            "url": f"http://{host}/v2/models/{name}/infer",
            "steps": [{k: v for k, v in s.items() if k not in ("exists", "reason", "stalled")}
                      for s in steps]}


def _step_status(namespace: str, step: str, model: str, models: Any) -> dict:
    body = first(models, (namespace, model))
    if body is None or body["metadata"].get("deletionTimestamp"):
        return {"name": step, "model": model, "ready": False, "servingVersion": "",
                "exists": False}
    model_status = body.get("status") or {}
    conditions = model_status.get("conditions") or []
    ready = get_condition(conditions, READY) or {}
    stalled = get_condition(conditions, STALLED) or {}
    return {"name": step, "model": model, "ready": ready.get("status") == TRUE,
            "servingVersion": model_status.get("servingVersion", ""), "exists": True,
            "stalled": stalled.get("status") == TRUE, "reason": ready.get("reason", "")}


def _apply_router(body, spec: PipelineSpec, router, indexes, logger) -> None:
    namespace, name = body["metadata"]["namespace"], body["metadata"]["name"]
    deployment = build_router_deployment(name, namespace, spec, image=SETTINGS.serving_image,
                                         pull_policy=SETTINGS.image_pull_policy,
                                         domain=SETTINGS.cluster_domain)
    service = build_router_service(name)
    live_service = first(indexes["modelops_router_services"], (namespace, name))
    for child, live in ((deployment, router and router["live"]), (service, live_service)):
        kopf.append_owner_reference(child, owner=body)
        child["metadata"]["namespace"] = namespace
        result = kube.ensure(child, namespace, live)
        if result:
            message = f"{result.capitalize()} {child['kind']} {child['metadata']['name']}"
            logger.info(message)
            kopf.event(body, type="Normal", reason=f"{child['kind']}{result.capitalize()}",
                       message=message)


def _invalid(status: Mapping[str, Any], message: str, generation: int) -> dict:
    conditions = apply_all(status.get("conditions") or [], {
        READY: (FALSE, "InvalidSpec", message), STALLED: (TRUE, "InvalidSpec", message),
        RECONCILING: None},
        now=iso(time.time()), generation=generation)
    return {**status, "conditions": conditions, "observedGeneration": generation}


def _write(body: Mapping[str, Any], old: dict, new: dict) -> bool:
    meta = body["metadata"]
    patch = kube.status_patch(old, new)
    if not patch:
        return True
    try:
        kube.patch_status(contract.PIPELINE_PLURAL, meta["namespace"], meta["name"],
                          meta["resourceVersion"], patch)
    except kube.Conflict:
        return False
    return True
