"""The shadow's children: the candidate's own Service and the serving pods' shadow annotations.

The same wiring carries a canary: the pods then copy nothing (`shadow-percent` 0) and hand the
candidate the step's share to answer (`modelops.io/canary-percent`, sticky by
`modelops.io/canary-hash-header`).

While a candidate is in shadow (`Plan.shadow`), the serving revision's pods copy a share of
their requests to `http://<model>-<candidate revision>.<namespace>.svc.<domain>:80`, a Service
that selects the candidate's pods only, so the Model's own Service never sends it a user. The
pods learn the target from `modelops.io/shadow-*` annotations merge-patched on them (a pod
template change would replace the serving pods) and read through their downward-API file.
The candidate's Service is created as soon as its pods start (`Plan.candidate_service`), so
kube-proxy has programmed it by the time they are ready. When no candidate is in shadow the
annotations are removed, and the candidate Service is deleted once no candidate needs one.
The builders here are pure; `apply_shadow` is the one place that writes, and writes a pod only
when its annotations differ from the wanted ones, so a steady shadow sends no request.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from modelops import contract as c
from modelops.operator import kube
from modelops.operator.builders import SERVICE_PORT, build_service, deployment_name, service_host
from modelops.operator.children import owned_by
from modelops.operator.observe import SHADOW_ANNOTATIONS
from modelops.operator.rollout_pass import ShadowWiring


def build_shadow_service(model: str, *, revision: str, version: str) -> dict:
    """The candidate's Service: named like its Deployment, selecting its pods only."""
    service = build_service(model, revision=revision, version=version)
    service["metadata"]["name"] = deployment_name(model, revision)
    service["metadata"]["labels"][c.LABEL_REVISION] = revision
    return service


def shadow_annotations(wiring: ShadowWiring, *, model: str, namespace: str,
                       domain: str) -> dict[str, str]:
    host = service_host(deployment_name(model, wiring.candidate), namespace, domain)
    wanted = {c.ANNOTATION_SHADOW_URL: f"http://{host}:{SERVICE_PORT}",
              c.ANNOTATION_SHADOW_VERSION: wiring.version,
              c.ANNOTATION_SHADOW_PERCENT: f"{wiring.percent:g}",
              c.ANNOTATION_SHADOW_TOLERANCE: f"{wiring.tolerance:g}"}
    if wiring.canary_percent:
        wanted[c.ANNOTATION_CANARY_PERCENT] = f"{wiring.canary_percent:g}"
    if wiring.canary_hash_header:
        wanted[c.ANNOTATION_CANARY_HASH_HEADER] = wiring.canary_hash_header
    return wanted


def annotation_changes(pods: Iterable[Mapping[str, Any]], wanted: Mapping[str, str] | None,
                       source: str | None, owns: Callable[[Mapping], bool]
                       ) -> list[tuple[str, dict[str, str | None]]]:
    """(pod name, merge patch) for each pod whose shadow annotations differ from the wanted
    ones: `wanted` on the pods of `source`, none on every other pod (None removes a key)."""
    changes = []
    for pod in pods:
        if pod.get("deleting") or not owns(pod):
            continue
        want = dict(wanted or {}) if pod["revision"] == source else {}
        have = pod.get("shadow") or {}
        patch = {k: want.get(k) for k in SHADOW_ANNOTATIONS if have.get(k) != want.get(k)}
        if patch:
            changes.append((pod["name"], patch))
    return changes


def stale_services(services: Iterable[Mapping[str, Any]], *, model: str, uid: str,
                   keep: str | None) -> list[tuple[str, str]]:
    """(name, uid) of this Model's candidate Services other than `keep` (never its own
    Service, never one another owner controls)."""
    return [(s["name"], s["uid"]) for s in services
            if s["name"] not in (model, keep) and not s.get("deleting")
            and (s.get("controller") or {}).get("uid") == uid]


def apply_shadow(body: Mapping[str, Any], wiring: ShadowWiring | None,
                 candidate: tuple[str, str] | None, *, pods: list[Mapping[str, Any]],
                 services: list[Mapping[str, Any]], apply: Callable[[dict, Mapping | None], bool],
                 domain: str, logger: logging.Logger) -> None:
    """The candidate Service first (`candidate`: (revision, version), from the moment its pods
    start, so kube-proxy has programmed it before the first copy), then the annotations, then
    the Services of shadows that ended. `apply(service, live)` owns and applies a child the way
    the handler does, False when the API server refused it (the handler reports that; the pods
    then copy nothing)."""
    meta = body["metadata"]
    namespace, name = meta["namespace"], meta["name"]
    keep, wanted, source = None, None, None
    if candidate is not None:
        service = build_shadow_service(name, revision=candidate[0], version=candidate[1])
        keep = service["metadata"]["name"]
        applied = apply(service, next((s for s in services if s["name"] == keep), None))
        if applied and wiring is not None:
            wanted = shadow_annotations(wiring, model=name, namespace=namespace, domain=domain)
            source = wiring.source
    for pod, patch in annotation_changes(pods, wanted, source, owned_by(name)):
        kube.annotate("Pod", pod, namespace, patch)
    for service_name, service_uid in stale_services(services, model=name, uid=meta["uid"],
                                                    keep=keep):
        if kube.delete("Service", service_name, namespace, uid=service_uid):
            logger.info(f"Deleted Service {service_name} (its shadow ended)")
