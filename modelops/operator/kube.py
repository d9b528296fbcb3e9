"""The only module that talks to the Kubernetes API (besides kopf's own watching and Events).

Children are written by server-side apply with one field manager (`modelops`, forced), so the
API server, not the operator, compares what we want with what is stored: quantities it rewrites
(`cpu: 2` stored as "2", "0.5" as "500m") are no change, and fields we stop setting are removed.
`read_meta` reads who controls an object before the first apply (see children.py for the
ownership rule). `patch_status` writes the status subresource with the resourceVersion the plan
was computed from, so a plan made from a stale view fails with `Conflict` instead of overwriting
newer status. Answers are not deserialised into client models (`_preload_content=False`), and
where only the metadata is read the API server is asked for nothing else (`METADATA_ONLY`): it
encodes, and we decode, a few hundred bytes instead of the whole object.
"""

from __future__ import annotations

import json
import logging
from typing import Any, Mapping

import kubernetes
from kubernetes.client.rest import ApiException

from modelops import contract

MERGE_PATCH = "application/merge-patch+json"
APPLY_PATCH = "application/apply-patch+yaml"
FIELD_MANAGER = contract.FIELD_MANAGER
# the object's metadata alone (PartialObjectMetadata), or the whole object from a server that
# cannot: meta_of reads either
METADATA_ONLY = {"Accept": "application/json;as=PartialObjectMetadata;g=meta.k8s.io;v=v1,"
                           "application/json"}
log = logging.getLogger(__name__)


class Conflict(Exception):
    """The object changed since it was read; the pass should be dropped and redone."""


_clients: dict[str, Any] = {}


def configure(pool_size: int = 20) -> None:
    """Load in-cluster credentials, or the kubeconfig when running outside a cluster.

    `pool_size` should match the worker threads, so no thread waits for a connection.
    """
    configuration = kubernetes.client.Configuration()
    try:
        kubernetes.config.load_incluster_config(client_configuration=configuration)
    except kubernetes.config.ConfigException:
        kubernetes.config.load_kube_config(client_configuration=configuration)
    configuration.connection_pool_maxsize = pool_size
    api = kubernetes.client.ApiClient(configuration)
    _clients.update(core=kubernetes.client.CoreV1Api(api), apps=kubernetes.client.AppsV1Api(api),
                    custom=kubernetes.client.CustomObjectsApi(api))


def _api(kind: str) -> tuple[Any, str]:
    if not _clients:
        configure()
    if kind == "Deployment":
        return _clients["apps"], "deployment"
    if kind == "Service":
        return _clients["core"], "service"
    if kind == "Pod":
        return _clients["core"], "pod"
    raise ValueError(f"unsupported kind {kind}")


def meta_of(body: Mapping[str, Any]) -> dict:
    """What the ownership check and the idle-pass check need from an object's metadata."""
    meta = body.get("metadata") or {}
    controller = next((o for o in meta.get("ownerReferences") or [] if o.get("controller")), None)
    return {"uid": meta.get("uid"), "resourceVersion": meta.get("resourceVersion"),
            "generation": meta.get("generation"),
            "deleting": bool(meta.get("deletionTimestamp")),
            "controller": None if controller is None else
            {k: controller.get(k) for k in ("kind", "name", "uid")}}


def create_secret_once(obj: dict, namespace: str) -> bool:
    """Create a Secret unless one with its name exists (never updates it); True if created."""
    if not _clients:
        configure()
    try:
        _drain(_clients["core"].create_namespaced_secret(namespace, obj, _preload_content=False))
    except ApiException as error:
        if error.status == 409:
            return False
        raise
    return True


def _drain(response: Any) -> None:
    """Give an answer we do not read back to the pool: unread, its connection stays taken."""
    response.drain_conn()


def read_meta(kind: str, name: str, namespace: str) -> dict | None:
    """`meta_of` the live object, or None when there is none (404)."""
    api, plural = _api(kind)
    try:
        response = getattr(api, f"read_namespaced_{plural}")(
            name, namespace, _headers=dict(METADATA_ONLY), _preload_content=False)
    except ApiException as error:
        if error.status == 404:
            return None
        raise
    return meta_of(json.loads(response.data))


def apply(obj: Mapping[str, Any]) -> dict:
    """Server-side apply `obj` (created if absent); returns `meta_of` the stored object."""
    api, plural = _api(obj["kind"])
    meta = obj["metadata"]
    response = getattr(api, f"patch_namespaced_{plural}")(
        meta["name"], meta["namespace"], obj, field_manager=FIELD_MANAGER, force=True,
        _content_type=APPLY_PATCH, _headers=dict(METADATA_ONLY), _preload_content=False)
    return meta_of(json.loads(response.data))


def label(kind: str, name: str, namespace: str, labels: Mapping[str, str | None]) -> None:
    """Merge-patch labels of one object (None removes a label); a vanished object is no error."""
    _merge_metadata(kind, name, namespace, {"labels": dict(labels)})


def annotate(kind: str, name: str, namespace: str,
             annotations: Mapping[str, str | None]) -> None:
    """Merge-patch annotations of one object (None removes one); a vanished object is no error."""
    _merge_metadata(kind, name, namespace, {"annotations": dict(annotations)})


def _merge_metadata(kind: str, name: str, namespace: str, metadata: dict) -> None:
    api, plural = _api(kind)
    try:
        _drain(getattr(api, f"patch_namespaced_{plural}")(
            name, namespace, {"metadata": metadata}, _content_type=MERGE_PATCH,
            _preload_content=False))
    except ApiException as error:
        if error.status != 404:
            raise


def delete(kind: str, name: str, namespace: str, uid: str | None = None) -> bool:
    """Delete one object (only the one with `uid`, when given); False when it was gone."""
    api, plural = _api(kind)
    body = kubernetes.client.V1DeleteOptions(propagation_policy="Background",
                                             preconditions={"uid": uid} if uid else None)
    try:
        _drain(getattr(api, f"delete_namespaced_{plural}")(name, namespace, body=body,
                                                           _preload_content=False))
        return True
    except ApiException as error:
        if error.status in (404, 409):
            return False
        raise


def patch_status(plural: str, namespace: str, name: str, resource_version: str,
                 status_patch: Mapping[str, Any]) -> str:
    """Merge-patch the status subresource, conditional on `resource_version`; returns the new
    resourceVersion. Raises Conflict when the object moved on."""
    body = {"metadata": {"resourceVersion": resource_version}, "status": dict(status_patch)}
    if not _clients:
        configure()
    try:
        response = _clients["custom"].patch_namespaced_custom_object_status(
            contract.API_GROUP, contract.API_VERSION, namespace, plural, name, body,
            _content_type=MERGE_PATCH, _headers=dict(METADATA_ONLY), _preload_content=False)
    except ApiException as error:
        if error.status in (404, 409):
            raise Conflict(f"{plural}/{name}: {error.reason}") from None
        raise
    return json.loads(response.data)["metadata"]["resourceVersion"]


def status_patch(old: Mapping[str, Any], new: Mapping[str, Any]) -> dict:
    """A JSON merge patch (RFC 7386) turning `old` into `new`; None deletes a key.

    A changed key is sent whole, as it is in `new`; but a merge patch merges nested objects, so
    a key that a nested object (status.analysis, status.rollback) no longer has is sent as None
    too, or the API server keeps the old value (a v1 window's status.analysis.quality shown
    under v2's analysis)."""
    patch = {k: _with_deletions(old.get(k), v) for k, v in new.items() if old.get(k) != v}
    patch.update({k: None for k in old if k not in new})
    return patch


def _with_deletions(before: Any, after: Any) -> Any:
    if not (isinstance(before, Mapping) and isinstance(after, Mapping)):
        return after
    merged = {k: _with_deletions(before.get(k), v) for k, v in after.items()}
    merged.update({k: None for k in before if k not in after})
    return merged


def error_message(error: ApiException) -> str:
    """The API server's own message from an ApiException (its Status body), else its reason."""
    try:
        return json.loads(error.body).get("message") or error.reason
    except (TypeError, ValueError, AttributeError):
        return str(error.reason)
