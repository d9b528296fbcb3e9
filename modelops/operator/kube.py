"""The only module that talks to the Kubernetes API (besides kopf's own watching and Events).

`ensure` creates a child or patches it when the fields we own differ from the live object, so
a pass with nothing to change makes no write. `patch_status` writes the status subresource with
the resourceVersion the plan was computed from, so a plan made from a stale view fails with
`Conflict` instead of overwriting newer status. One place handles 404/409.
"""

from __future__ import annotations

import json
import logging
from typing import Any, Mapping

import kubernetes
from kubernetes.client.rest import ApiException

from modelops import contract

MERGE_PATCH = "application/merge-patch+json"
log = logging.getLogger(__name__)


class Conflict(Exception):
    """The object changed since it was read; the pass should be dropped and redone."""


_clients: dict[str, Any] = {}


def configure(pool_size: int = 20) -> None:
    """Load in-cluster credentials, or the kubeconfig when running outside a cluster.

    `pool_size` should match the handler threads, so no thread waits for a connection.
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
    raise ValueError(f"unsupported kind {kind}")


def differs(desired: Any, live: Any) -> bool:
    """True when some field of `desired` is missing or different in `live` (lists compare
    item by item, maps by the desired keys only: the server's defaults do not count)."""
    if isinstance(desired, Mapping):
        if not isinstance(live, Mapping):
            return True
        return any(differs(v, live.get(k)) for k, v in desired.items())
    if isinstance(desired, list):
        if not isinstance(live, list) or len(desired) != len(live):
            return True
        return any(differs(d, l) for d, l in zip(desired, live))
    return desired != live


def owned_part(obj: Mapping[str, Any]) -> dict:
    """The fields of a child the operator owns: labels, owner references and spec."""
    meta = obj.get("metadata", {})
    return {"metadata": {"labels": meta.get("labels", {}),
                         "ownerReferences": meta.get("ownerReferences", [])},
            "spec": obj.get("spec", {})}


def ensure(obj: dict, namespace: str, live: Mapping[str, Any] | None) -> str | None:
    """Create `obj`, or patch it when `live` (the cached object, or None) differs.

    Returns "created", "updated" or None when nothing was written. The cache may lag behind
    the API: a create that finds the object patches it, a patch that finds none creates it.
    """
    api, kind = _api(obj["kind"])
    name = obj["metadata"]["name"]
    if live is not None and not differs(owned_part(obj), live):
        return None
    # _preload_content=False: the answer is not needed, and turning it into client model
    # objects costs more CPU than the request itself
    def create() -> str:
        getattr(api, f"create_namespaced_{kind}")(namespace, obj, _preload_content=False)
        return "created"

    def patch() -> str:
        getattr(api, f"patch_namespaced_{kind}")(name, namespace, owned_part(obj),
                                                 _content_type=MERGE_PATCH,
                                                 _preload_content=False)
        return "updated"
    try:
        return create() if live is None else patch()
    except ApiException as error:
        if error.status == 409 and live is None:
            return patch()
        if error.status == 404 and live is not None:
            return create()
        raise


def create_secret_once(obj: dict, namespace: str) -> bool:
    """Create a Secret unless one with its name exists (never updates it); True if created."""
    if not _clients:
        configure()
    try:
        _clients["core"].create_namespaced_secret(namespace, obj, _preload_content=False)
    except ApiException as error:
        if error.status == 409:
            return False
        raise
    return True


def delete(kind: str, name: str, namespace: str) -> bool:
    api, plural = _api(kind)
    try:
        getattr(api, f"delete_namespaced_{plural}")(name, namespace, propagation_policy="Background",
                                                    _preload_content=False)
        return True
    except ApiException as error:
        if error.status == 404:
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
            _content_type=MERGE_PATCH, _preload_content=False)
    except ApiException as error:
        if error.status in (404, 409):
            raise Conflict(f"{plural}/{name}: {error.reason}") from None
        raise
    return json.loads(response.data)["metadata"]["resourceVersion"]


def status_patch(old: Mapping[str, Any], new: Mapping[str, Any]) -> dict:
    """A merge patch turning `old` into `new` at the top level (None deletes a key)."""
    patch = {k: v for k, v in new.items() if old.get(k) != v}
    patch.update({k: None for k in old if k not in new})
    return patch


def error_message(error: ApiException) -> str:
    """The API server's own message from an ApiException (its Status body), else its reason."""
    try:
        return json.loads(error.body).get("message") or error.reason
    except (TypeError, ValueError):
        return str(error.reason)
