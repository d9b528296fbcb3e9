"""Model handlers: watch events of a Model, its Deployments, Services and pods mark the Model
dirty in `QUEUE`; a worker runs one idempotent `reconcile_model` pass on the latest Model from
the index, and the pass asks to run again one tick later (when the analysis may be due).

A pass: parse the spec, read children from the indexes, analyse when due (the scrape runs in
the worker, outside any lock), plan (pure), write the status (conditional on the resourceVersion
it was planned from), apply the children (children.py: ownership check, server-side apply,
nothing sent when nothing changed), then post the pass's Events: the plan's, the last one also
naming the children written (`pass_events`). A child the API server refuses, or whose name
another object holds, becomes a condition (`ChildRejected`, `ChildNameConflict`).
"""

from __future__ import annotations

import contextvars
import logging
import secrets
import time
from typing import Any, Hashable, Mapping

import kopf
from kubernetes.client.rest import ApiException

from modelops import contract
from modelops.operator import alias_pin, kube, metrics
from modelops.operator.builders import build_deployment, build_feedback_secret, build_service
from modelops.operator.builders import deployment_name, service_host
from modelops.operator.children import (APPLIER, ChildConflict, ChildRejected, owned_by,
                                        pass_events, rejection, role_changes)
from modelops.operator.conditions import FALSE, READY, RECONCILING, STALLED, TRUE, apply_all
from modelops.operator.handlers.indexes import MODEL, first, read
from modelops.operator.handlers.lifecycle import (CANARY, INDEXES, MONITOR, SETTINGS, SHADOW,
                                                  remember_indexes)
from modelops.operator.observe import pod_failure, revision_states
from modelops.operator.rollout import Plan, PlanInput, iso, plan_model
from modelops.operator.shadow_children import apply_shadow
from modelops.operator.spec import SpecError, parse_model
from modelops.operator.statuswrite import (CHILD_ERRORS, STATUS, apply_reporting_refusals,
                                           with_child_error)
from modelops.operator.workqueue import WorkQueue

log = logging.getLogger(__name__)
CHILD_LABELS = {contract.LABEL_MANAGED_BY: contract.MANAGED_BY, contract.LABEL_MODEL: kopf.PRESENT}


def model_pass(key: Hashable) -> float | None:
    body = first(INDEXES["modelops_models"], key)
    if body is None:
        return None
    if STATUS.stale(body):
        return SETTINGS.tick_seconds  # the watch has not delivered our last write yet
    reconcile_model(body, INDEXES, log)
    return next_pass_in(body, SETTINGS.tick_seconds)


RESYNC_SECONDS = 30.0


def next_pass_in(body: Mapping[str, Any], tick: float) -> float:
    """A serving Model is analysed every tick; any other waits for watch events (every change
    of its children is one), with a resync now and then for the planner's own deadlines."""
    status, spec = body.get("status") or {}, body.get("spec") or {}
    analysed = status.get("servingRevision") and status.get("servingSince")
    return tick if analysed and not spec.get("suspend") else max(tick, RESYNC_SECONDS)


QUEUE = WorkQueue("models", SETTINGS.max_workers, model_pass)
ALIASES = alias_pin.AliasCache(alias_pin.resolver(SETTINGS.mlflow_timeout_seconds),
                               SETTINGS.mlflow_alias_ttl_seconds)


@kopf.on.cleanup()
def stop_models_queue(**_: Any) -> None:
    QUEUE.stop()


def _enqueue(key: tuple[str, str], kwargs: Mapping[str, Any]) -> None:
    remember_indexes(kwargs)
    QUEUE.start(contextvars.copy_context())
    QUEUE.add(key)


@kopf.on.event(*MODEL)
async def on_model_event(type: str, body: kopf.Body, **kwargs: Any) -> None:
    meta = body["metadata"]
    key = (meta["namespace"], meta["name"])
    if type == "DELETED":
        QUEUE.forget(key)
        MONITOR.forget(meta["uid"])
        SHADOW.forget(meta["uid"])
        CANARY.forget(meta["uid"])
        STATUS.forget(meta["uid"])
        APPLIER.forget(key[0], {key[1]}, prefix=deployment_name(key[1], ""))
        metrics.forget_model(*key)
    else:
        _enqueue(key, kwargs)
    from modelops.operator.handlers import pipeline  # a step's status feeds its pipelines
    for name in read(kwargs["modelops_pipelines_by_model"], key):
        pipeline.enqueue((key[0], name), kwargs)


def _pod_matters(status: Mapping[str, Any], type: str | None = None, **_: Any) -> bool:
    # readiness comes via Deployments; a new pod (None: seen in the initial listing) may need
    # its role label
    return bool(pod_failure(status)) or type in (None, "ADDED")


@kopf.on.event("apps", "v1", "deployments", labels=CHILD_LABELS)
@kopf.on.event("", "v1", "services", labels=CHILD_LABELS)
@kopf.on.event("", "v1", "pods", labels=CHILD_LABELS, when=_pod_matters)
async def on_child_event(type: str, namespace: str, name: str, labels: kopf.Labels,
                         **kwargs: Any) -> None:
    """A child changed (became ready, failed, was deleted or edited): re-plan its Model."""
    if type == "DELETED":
        APPLIER.forget(namespace, {name})  # so the pass applies it again
    _enqueue((namespace, labels[contract.LABEL_MODEL]), kwargs)


def reconcile_model(body: Mapping[str, Any], indexes: Mapping[str, Any],
                    logger: logging.Logger) -> None:
    meta = body["metadata"]
    if meta.get("deletionTimestamp"):
        return
    try:
        spec = parse_model(body.get("spec") or {})
    except SpecError as error:
        _write_invalid(body, str(error))
        return
    key = (meta["namespace"], meta["name"])
    status, now = dict(body.get("status") or {}), time.time()
    pinned = alias_pin.pin(spec, status, meta.get("annotations") or {}, ALIASES)
    if pinned.spec is None:  # an alias never resolved: nothing to serve yet
        _write_unresolved(body, status, pinned, now)
        return
    spec = pinned.spec  # models:/<name>@<alias> -> models:/<name>/<version>
    pods = read(indexes["modelops_pods"], key)
    deployments = read(indexes["modelops_deployments"], key)
    decision, analysis, shadow, canary = None, None, {}, {}
    if not spec.suspend:  # scrapes and decides only when due
        decision, analysis = MONITOR.evaluate(uid=meta["uid"], namespace=key[0], name=key[1],
                                              spec=spec, status=status, pods=pods, now=now)
        shadow = SHADOW.measure(uid=meta["uid"], name=key[1], status=status, pods=pods, now=now)
        canary = CANARY.measure(uid=meta["uid"], name=key[1], status=status, pods=pods, now=now)
    plan = plan_model(PlanInput(name=key[1], spec=spec, generation=meta["generation"],
                                status=status, observed=revision_states(deployments, pods),
                                now=now, annotations=dict(meta.get("annotations") or {}),
                                decision=decision, shadow=shadow, canary=canary))
    _complete_status(body, plan, analysis, pinned, status, now)
    if not _write_status(body, status, plan.status):
        return
    _record(body, plan, decision)
    written: list[tuple[str, str, str]] = []  # (result, kind, name), even when a refusal ends it
    try:
        if not spec.suspend:
            _children(body, plan, deployments, pods, indexes, logger, written)
    finally:
        for type_, reason, message in pass_events(plan.events, written):
            kopf.event(body, type=type_, reason=reason, message=message)


def _complete_status(body, plan: Plan, analysis, pinned: alias_pin.Pinned, status: dict,
                     now: float) -> None:
    """The plan's status plus the analysis, the URL, the alias pin and a refused child."""
    meta = body["metadata"]
    namespace, name = meta["namespace"], meta["name"]
    if analysis is not None:
        plan.status["analysis"] = analysis
    plan.status["url"] = (f"http://{service_host(name, namespace, SETTINGS.cluster_domain)}"
                          f"/v2/models/{name}/infer")
    alias_pin.report(plan.status, pinned, now=iso(now), generation=meta["generation"])
    plan.events.extend(pinned.events)
    with_child_error(plan.status, CHILD_ERRORS.get(meta["uid"]), status.get("conditions") or [],
                     now=iso(now), generation=meta["generation"])


def _children(body, plan: Plan, deployments, pods, indexes, logger, written: list) -> None:
    """Apply the plan's children; a refusal or a name conflict becomes the Model's condition."""
    apply_reporting_refusals(
        body, lambda: _apply_children(body, plan, deployments, pods, indexes, logger, written),
        QUEUE, logger, "Children")


def _write_status(body: Mapping[str, Any], old: dict, new: dict) -> bool:
    meta = body["metadata"]
    if not STATUS.write(contract.MODEL_PLURAL, body, old, new):
        return False
    metrics.record_status(meta["namespace"], meta["name"], new.get("conditions") or [])
    return True


def _record(body: Mapping[str, Any], plan: Plan, decision: Any) -> None:
    """The pass's metrics: rollbacks, decisions, the serving version's error rate."""
    meta = body["metadata"]
    for _, reason, _ in plan.events:
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
                    pods: list[dict], indexes: Mapping[str, Any], logger: logging.Logger,
                    written: list[tuple[str, str, str]]) -> None:
    """Apply the children (`_apply_each`), each one written added to `written`."""
    _ensure_feedback_key(body)
    refused: list[Exception] = []  # one refused child does not stop the others

    def apply_owned(child: dict, found: Mapping[str, Any] | None) -> bool:
        _own(child, body)
        return _apply(body, logger, child, found, refused, written)

    _apply_each(body, plan, deployments, pods, indexes, logger, apply_owned, refused)


def _apply_each(body, plan: Plan, deployments, pods, indexes, logger, apply_owned,
                refused: list[Exception]) -> None:
    """The Service first (a rollback is only a selector change: it should not wait for the
    Deployments' writes), with the pods' role labels around it; then the Deployments, the
    shadow's children (shadow_children.py) and the deletions."""
    meta = body["metadata"]
    namespace, name = meta["namespace"], meta["name"]
    services = read(indexes["modelops_services"], (namespace, name))
    before, after = role_changes(pods, plan.service_revision, owned_by(name),
                                 plan.shadow.candidate if plan.shadow else None)
    _label_pods(namespace, before, logger)
    apply_owned(build_service(name, revision=plan.service_revision, version=plan.service_version),
                next((s for s in services if s["name"] == name), None))
    _label_pods(namespace, after, logger)
    live = {d["revision"]: d["live"] for d in deployments}
    for revision, (spec, replicas) in plan.deployments.items():
        apply_owned(build_deployment(name, spec, image=SETTINGS.serving_image,
                                     pull_policy=SETTINGS.image_pull_policy, replicas=replicas),
                    live.get(revision))
    apply_shadow(body, plan.shadow, plan.candidate_service, pods=pods, services=services,
                 apply=apply_owned, domain=SETTINGS.cluster_domain, logger=logger)
    if refused:
        raise refused[0]
    for revision in plan.delete:
        found = live.get(revision) or {}
        if (found.get("controller") or {}).get("uid") == meta["uid"] and kube.delete(
                "Deployment", deployment_name(name, revision), namespace, uid=found.get("uid")):
            logger.info(f"Deleted Deployment {deployment_name(name, revision)}")


def _apply(body, logger, child: dict, live, refused: list[Exception],
           written: list[tuple[str, str, str]]) -> bool:
    """Apply one child; False (and the error kept in `refused`) when it was refused."""
    try:
        result = APPLIER.apply(child, body, live)
        if result is not None:
            kind, name = child["kind"], child["metadata"]["name"]
            logger.info(f"{result.capitalize()} {kind} {name}")
            written.append((result, kind, name))
        return True
    except (ChildConflict, ChildRejected) as error:
        refused.append(error)
        return False


def _label_pods(namespace: str, changes: list[tuple[str, str]], logger: logging.Logger) -> None:
    for pod, role in changes:
        kube.label("Pod", pod, namespace, {contract.LABEL_ROLE: role})
        logger.info(f"Labelled pod {namespace}/{pod} {contract.LABEL_ROLE}={role}")


_keys_created: set[str] = set()  # Model uids whose feedback Secret exists


def _ensure_feedback_key(body: Mapping[str, Any]) -> None:
    """Create the Model's feedback HMAC key Secret once (a 409 means it exists: kept as is)."""
    uid = body["metadata"]["uid"]
    if uid in _keys_created:
        return
    secret = build_feedback_secret(body["metadata"]["name"], secrets.token_urlsafe(32))
    _own(secret, body)
    try:
        kube.create_secret_once(secret, body["metadata"]["namespace"])
    except ApiException as error:  # refused (quota, policy, terminating namespace): say so
        refused = rejection("Secret", secret["metadata"]["name"], error)
        if refused is None:
            raise
        raise refused from None
    _keys_created.add(uid)


def _own(child: dict, owner: Mapping[str, Any]) -> None:
    # not kopf.adopt: it would also copy the Model's labels (e.g. Argo CD's tracking label)
    kopf.append_owner_reference(child, owner=owner)
    child["metadata"]["namespace"] = owner["metadata"]["namespace"]


def _write_unresolved(body: Mapping[str, Any], status: dict, pinned: alias_pin.Pinned,
                      now: float) -> None:
    """An alias never resolved: only the conditions saying why (no children are planned)."""
    generation = body["metadata"]["generation"]
    new = alias_pin.report({**status, "observedGeneration": generation}, pinned, now=iso(now),
                           generation=generation)
    if _write_status(body, status, new):
        for type_, reason, message in pinned.events:
            kopf.event(body, type=type_, reason=reason, message=message)


def _write_invalid(body: Mapping[str, Any], message: str) -> None:
    meta, status = body["metadata"], dict(body.get("status") or {})
    conditions = apply_all(status.get("conditions") or [], {
        READY: (FALSE, "InvalidSpec", message), STALLED: (TRUE, "InvalidSpec", message),
        RECONCILING: None},
        now=iso(time.time()), generation=meta["generation"])
    _write_status(body, status, {**status, "conditions": conditions,
                                 "observedGeneration": meta["generation"]})
