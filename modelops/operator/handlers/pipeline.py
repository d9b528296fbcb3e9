"""ModelPipeline handlers: run the router (the serving image in pipeline mode) and its Service,
and report the pipeline Ready only when the router and every step's Model are Ready.
Watch events of the pipeline, its router Deployment and Service, and of every step's Model
(through the `modelops_pipelines_by_model` index) mark it dirty in `QUEUE`; a worker runs the
pass on the latest pipeline from the index, and again one tick later.

Step Models are read from the Model index, so a step whose Model is deleted is reported
(`StepModelMissing`) instead of failing the pass, and a step Model that is Stalled (rolled back,
artifact refused) stalls the pipeline too (`StepStalled`), so GitOps tools stop waiting. The
router's children follow the same rule as a Model's (children.py): `ChildNameConflict` and
`ChildRejected` become the pipeline's conditions.
"""

from __future__ import annotations

import contextvars
import logging
import time
from typing import Any, Hashable, Mapping

import kopf

from modelops import contract
from modelops.operator import kube
from modelops.operator.builders import (build_router_deployment, build_router_service,
                                        router_name, service_host)
from modelops.operator.conditions import (FALSE, READY, RECONCILING, STALLED, TRUE, apply_all,
                                          get_condition, pipeline_ready)
from modelops.operator.children import APPLIED_REASON, APPLIER, applied_message
from modelops.operator.handlers.indexes import PIPELINE, ROUTER_LABELS, first
from modelops.operator.handlers.lifecycle import INDEXES, SETTINGS, remember_indexes
from modelops.operator.rollout import iso
from modelops.operator.spec import PipelineSpec, SpecError, parse_pipeline
from modelops.operator.statuswrite import (CHILD_ERRORS, STATUS, apply_reporting_refusals,
                                           with_child_error)
from modelops.operator.workqueue import WorkQueue

log = logging.getLogger(__name__)


def pipeline_pass(key: Hashable) -> float | None:
    body = first(INDEXES["modelops_pipelines"], key)
    if body is None:
        return None
    if not STATUS.stale(body):
        reconcile_pipeline(body, INDEXES, log)
    return SETTINGS.tick_seconds


QUEUE = WorkQueue("pipelines", 4, pipeline_pass)


@kopf.on.cleanup()
def stop_pipelines_queue(**_: Any) -> None:
    QUEUE.stop()


def enqueue(key: tuple[str, str], kwargs: Mapping[str, Any]) -> None:
    remember_indexes(kwargs)
    QUEUE.start(contextvars.copy_context())
    QUEUE.add(key)


@kopf.on.event(*PIPELINE)
async def on_pipeline_event(type: str, body: kopf.Body, **kwargs: Any) -> None:
    meta = body["metadata"]
    key = (meta["namespace"], meta["name"])
    if type == "DELETED":
        QUEUE.forget(key)
        STATUS.forget(meta["uid"])
        APPLIER.forget(key[0], {router_name(key[1])})
        return
    enqueue(key, kwargs)


@kopf.on.event("apps", "v1", "deployments", labels=ROUTER_LABELS)
@kopf.on.event("", "v1", "services", labels=ROUTER_LABELS)
async def on_router_event(type: str, namespace: str, name: str, labels: kopf.Labels,
                          **kwargs: Any) -> None:
    if type == "DELETED":
        APPLIER.forget(namespace, {name})  # so the pass applies it again
    enqueue((namespace, labels[contract.LABEL_PIPELINE]), kwargs)


def reconcile_pipeline(body: Mapping[str, Any], indexes: Mapping[str, Any],
                       logger: logging.Logger) -> None:
    meta = body["metadata"]
    if meta.get("deletionTimestamp"):
        return
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
    with_child_error(new, CHILD_ERRORS.get(meta["uid"]), status.get("conditions") or [],
                     now=iso(time.time()), generation=meta["generation"])
    if not _write(body, status, new) or spec.suspend:
        return
    _router_children(body, spec, router, indexes, logger)
    before, after = get_condition(status.get("conditions") or [], READY), \
        get_condition(new["conditions"], READY)
    if (before or {}).get("status") != after["status"]:
        kopf.event(body, type="Normal" if after["status"] == TRUE else "Warning",
                   reason=after["reason"], message=after["message"])


def _router_children(body, spec: PipelineSpec, router, indexes, logger) -> None:
    """Apply the router's children; a refusal or a name conflict becomes a condition."""
    apply_reporting_refusals(body, lambda: _apply_router(body, spec, router, indexes, logger),
                             QUEUE, logger, "Router")


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
    written: list[tuple[str, str, str]] = []
    try:
        for child, live in ((deployment, router and router["live"]), (service, live_service)):
            kopf.append_owner_reference(child, owner=body)
            child["metadata"]["namespace"] = namespace
            result = APPLIER.apply(child, body, live)
            if result:
                written.append((result, child["kind"], child["metadata"]["name"]))
                logger.info(f"{result.capitalize()} {child['kind']} {child['metadata']['name']}")
    finally:
        message = applied_message(written)
        if message:
            kopf.event(body, type="Normal", reason=APPLIED_REASON, message=message)


def _invalid(status: Mapping[str, Any], message: str, generation: int) -> dict:
    conditions = apply_all(status.get("conditions") or [], {
        READY: (FALSE, "InvalidSpec", message), STALLED: (TRUE, "InvalidSpec", message),
        RECONCILING: None},
        now=iso(time.time()), generation=generation)
    return {**status, "conditions": conditions, "observedGeneration": generation}


def _write(body: Mapping[str, Any], old: dict, new: dict) -> bool:
    return STATUS.write(contract.PIPELINE_PLURAL, body, old, new)
