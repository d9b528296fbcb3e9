"""Model handlers: one idempotent `reconcile_model` pass, triggered by every watch event of the
Model or of its Deployments (and failing pods), and every tick by the `Ticker`, whose passes
also run the rollback analysis.

A pass: parse the spec, read children from the indexes, maybe analyse, plan (pure), write the
status (conditional on the resourceVersion it was planned from), post Events, then create or
patch the children that differ. Passes for one Model never overlap (a lock per uid), and a pass
planned from a Model older than the operator's own last status write is dropped.
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
from modelops.operator import kube, metrics
import secrets

from modelops.operator.builders import build_deployment, build_feedback_secret, build_service
from modelops.operator.builders import deployment_name, service_host
from modelops.operator.conditions import FALSE, READY, RECONCILING, STALLED, TRUE, apply_all
from modelops.operator.handlers.indexes import INDEXES, MODEL, first
from modelops.operator.handlers.lifecycle import MONITOR, SETTINGS
from modelops.operator.observe import pod_failure, revision_states
from modelops.operator.rollout import Plan, PlanInput, iso, plan_model
from modelops.operator.spec import SpecError, parse_model
from modelops.operator.ticker import Ticker

log = logging.getLogger(__name__)
_locks: dict[str, threading.Lock] = defaultdict(threading.Lock)
_written: dict[str, int] = {}  # uid -> resourceVersion of the operator's last status write


def _tick_model(body: Mapping[str, Any], indexes: Mapping[str, Any]) -> None:
    reconcile_model(body, indexes, log, analyse=True)


TICKER = Ticker("models", SETTINGS.tick_seconds, SETTINGS.max_workers, _tick_model)


@kopf.on.cleanup()
def stop_models_ticker(**_: Any) -> None:
    TICKER.stop()


@kopf.on.event(*MODEL)
def on_model_event(type: str, body: kopf.Body, logger: logging.Logger, **kwargs: Any) -> None:
    uid = body["metadata"]["uid"]
    if type == "DELETED":
        TICKER.forget(uid)
        _locks.pop(uid, None), _written.pop(uid, None)
        MONITOR.forget(uid)
        metrics.forget_model(body["metadata"]["namespace"], body["metadata"]["name"])
        return
    indexes = {name: kwargs[name] for name in INDEXES}
    TICKER.track(uid, copy.deepcopy(dict(body)), indexes)
    reconcile_model(body, indexes, logger, analyse=False)


@kopf.on.event("apps", "v1", "deployments", labels={contract.LABEL_MANAGED_BY: contract.MANAGED_BY,
                                                    contract.LABEL_MODEL: kopf.PRESENT})
@kopf.on.event("", "v1", "pods", labels={contract.LABEL_MANAGED_BY: contract.MANAGED_BY,
                                         contract.LABEL_MODEL: kopf.PRESENT},
               when=lambda status, **_: bool(pod_failure(status)))  # readiness comes via Deployments
def on_child_event(namespace: str, labels: kopf.Labels, logger: logging.Logger,
                   **kwargs: Any) -> None:
    """A child changed (became ready, failed, was deleted or edited): re-plan its Model."""
    model = first(kwargs["modelops_models"], (namespace, labels[contract.LABEL_MODEL]))
    if model is not None:
        reconcile_model(model, {name: kwargs[name] for name in INDEXES}, logger, analyse=False)


def reconcile_model(body: Mapping[str, Any], indexes: Mapping[str, Any],
                    logger: logging.Logger, *, analyse: bool) -> None:
    meta = body["metadata"]
    if meta.get("deletionTimestamp"):
        return
    with _locks[meta["uid"]]:
        if int(meta["resourceVersion"]) < _written.get(meta["uid"], 0):
            return  # planned from a view older than our own last write; a fresher event follows
        try:
            spec = parse_model(body.get("spec") or {})
        except SpecError as error:
            _write_invalid(body, str(error))
            return
        key = (meta["namespace"], meta["name"])
        pods = list(indexes["modelops_pods"].get(key, ()))
        deployments = list(indexes["modelops_deployments"].get(key, ()))
        status, now = dict(body.get("status") or {}), time.time()
        decision, analysis = None, None
        if analyse and not spec.suspend:
            decision, analysis = MONITOR.evaluate(uid=meta["uid"], namespace=key[0], name=key[1],
                                                  spec=spec, status=status, pods=pods, now=now)
        plan = plan_model(PlanInput(name=key[1], spec=spec, generation=meta["generation"],
                                    status=status, observed=revision_states(deployments, pods),
                                    now=now, annotations=dict(meta.get("annotations") or {}),
                                    decision=decision))
        if analysis is not None:
            plan.status["analysis"] = analysis
        plan.status["url"] = (f"http://{service_host(key[1], key[0], SETTINGS.cluster_domain)}"
                              f"/v2/models/{key[1]}/infer")
        if not _write_status(body, status, plan.status):
            return
        _post(body, plan, decision)
        if not spec.suspend:
            try:
                _apply_children(body, plan, deployments, indexes, logger)
            except ApiException as error:  # retried on the next event or tick
                logger.warning(f"Children not reconciled yet: {error.status} {error.reason}: "
                               f"{kube.error_message(error)}")


def _write_status(body: Mapping[str, Any], old: dict, new: dict) -> bool:
    meta = body["metadata"]
    patch = kube.status_patch(old, new)
    if not patch:
        return True
    try:
        rv = kube.patch_status(contract.MODEL_PLURAL, meta["namespace"], meta["name"],
                               meta["resourceVersion"], patch)
    except kube.Conflict:
        return False
    _written[meta["uid"]] = int(rv)
    metrics.record_status(meta["namespace"], meta["name"], new.get("conditions") or [])
    return True


def _post(body: Mapping[str, Any], plan: Plan, decision: Any) -> None:
    meta = body["metadata"]
    for type_, reason, message in plan.events:
        kopf.event(body, type=type_, reason=reason, message=message)
        if reason == "RolledBack":
            record = plan.status.get("rollback") or {}
            metrics.ROLLBACKS.labels(meta["namespace"], meta["name"], record.get("fromVersion"),
                                     record.get("toVersion")).inc()
    if decision is not None:
        metrics.DECISIONS.labels(meta["namespace"], meta["name"], decision.result).inc()
        if decision.error_rate is not None:
            metrics.ERROR_RATE.labels(meta["namespace"], meta["name"],
                                      plan.status.get("servingVersion")).set(decision.error_rate)


def _apply_children(body: Mapping[str, Any], plan: Plan, deployments: list[dict],
                    indexes: Mapping[str, Any], logger: logging.Logger) -> None:
    meta = body["metadata"]
    namespace, name = meta["namespace"], meta["name"]
    _ensure_feedback_key(body)
    live = {d["revision"]: d["live"] for d in deployments}
    for revision, (spec, replicas) in plan.deployments.items():
        child = build_deployment(name, spec, image=SETTINGS.serving_image,
                                 pull_policy=SETTINGS.image_pull_policy, replicas=replicas)
        _own(child, body)
        _report(body, logger, "Deployment", child, kube.ensure(child, namespace, live.get(revision)))
    for revision in plan.delete:
        if kube.delete("Deployment", deployment_name(name, revision), namespace):
            logger.info(f"Deleted Deployment {deployment_name(name, revision)}")
    service = build_service(name, revision=plan.service_revision, version=plan.service_version)
    _own(service, body)
    live_service = first(indexes["modelops_services"], (namespace, name))
    _report(body, logger, "Service", service, kube.ensure(service, namespace, live_service))


_keys_created: set[str] = set()  # Model uids whose feedback Secret exists


def _ensure_feedback_key(body: Mapping[str, Any]) -> None:
    """Create the Model's feedback HMAC key Secret once (a 409 means it exists: kept as is)."""
    uid = body["metadata"]["uid"]
    if uid in _keys_created:
        return
    secret = build_feedback_secret(body["metadata"]["name"], secrets.token_urlsafe(32))
    _own(secret, body)
    kube.create_secret_once(secret, body["metadata"]["namespace"])
    _keys_created.add(uid)


def _own(child: dict, owner: Mapping[str, Any]) -> None:
    # not kopf.adopt: it would also copy the Model's labels (e.g. Argo CD's tracking label)
    kopf.append_owner_reference(child, owner=owner)
    child["metadata"]["namespace"] = owner["metadata"]["namespace"]


def _report(body, logger, kind: str, child: dict, result: str | None) -> None:
    if result is None:
        return
    name = child["metadata"]["name"]
    logger.info(f"{result.capitalize()} {kind} {name}")
    kopf.event(body, type="Normal", reason=f"{kind}{result.capitalize()}",
               message=f"{result.capitalize()} {kind} {name}")


def _write_invalid(body: Mapping[str, Any], message: str) -> None:
    meta, status = body["metadata"], dict(body.get("status") or {})
    conditions = apply_all(status.get("conditions") or [], {
        READY: (FALSE, "InvalidSpec", message), STALLED: (TRUE, "InvalidSpec", message),
        RECONCILING: None},
        now=iso(time.time()), generation=meta["generation"])
    _write_status(body, status, {**status, "conditions": conditions,
                                 "observedGeneration": meta["generation"]})
