"""The `modelops` command's only contact with the cluster: read Models, write annotations.

`connect` loads a kubeconfig (or the in-cluster service account) and finds the default
namespace; `ModelClient` wraps the kubernetes client's CustomObjectsApi (tests pass a fake with
the same methods) and turns API and connection failures into one-line `CliError`s. Annotations
are written with a JSON merge patch on metadata only: the command never touches `spec`.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import urllib3
from kubernetes import client, config
from kubernetes.client.exceptions import ApiException

from modelops import contract
from modelops.cli_views import CliError

IN_CLUSTER_NAMESPACE_FILE = Path("/var/run/secrets/kubernetes.io/serviceaccount/namespace")
RESOURCE = f"{contract.MODEL_PLURAL}.{contract.API_GROUP}"


def _kubeconfig_namespace(kubeconfig: str | None, context: str | None) -> str:
    contexts, current = config.list_kube_config_contexts(config_file=kubeconfig)
    chosen = next((c for c in contexts if c.get("name") == context), None) if context else current
    return ((chosen or {}).get("context") or {}).get("namespace") or "default"


def connect(kubeconfig: str | None = None, context: str | None = None) -> tuple[Any, str]:
    """(CustomObjectsApi, default namespace) from a kubeconfig, else from the pod's account."""
    try:
        api_client = config.new_client_from_config(config_file=kubeconfig, context=context)
        return client.CustomObjectsApi(api_client), _kubeconfig_namespace(kubeconfig, context)
    except (config.ConfigException, OSError, TypeError) as exc:
        kubeconfig_error = exc
    if kubeconfig or context or "KUBERNETES_SERVICE_HOST" not in os.environ:
        raise CliError(f"no usable Kubernetes configuration: {kubeconfig_error}") from None
    configuration = client.Configuration()
    try:
        config.load_incluster_config(client_configuration=configuration)
        namespace = IN_CLUSTER_NAMESPACE_FILE.read_text().strip() or "default"
    except (config.ConfigException, OSError) as exc:
        raise CliError(f"no usable Kubernetes configuration: {exc}") from None
    return client.CustomObjectsApi(client.ApiClient(configuration)), namespace


def _api_message(exc: ApiException) -> str:
    """The message of a Kubernetes Status body, or the HTTP reason."""
    try:
        return str(json.loads(exc.body or "")["message"])
    except (ValueError, KeyError, TypeError):
        return str(exc.reason or "").strip() or f"HTTP {exc.status}"


def _is_missing_object(exc: ApiException) -> bool:
    """A 404 for an object carries a Status naming it; a 404 for an unknown resource does not."""
    try:
        return bool(json.loads(exc.body or "")["details"]["name"])
    except (ValueError, KeyError, TypeError):
        return False


def _unreachable(exc: Exception) -> str:
    """Where and why a connection failed, without urllib3's nested reprs."""
    pool = getattr(exc, "pool", None)
    where = f" at {pool.host}:{pool.port}" if pool is not None else ""
    reason = getattr(exc, "reason", None) or exc
    text = str(reason)
    if "refused" in text.lower():
        text = "connection refused"
    elif isinstance(reason, urllib3.exceptions.TimeoutError):
        text = "timed out"
    return f"cannot reach the Kubernetes API server{where}: {text}"


def explain(exc: Exception, *, namespace: str | None, name: str | None = None) -> CliError:
    """Turn a client failure into a one-line, actionable CliError."""
    if isinstance(exc, (urllib3.exceptions.HTTPError, OSError)):
        return CliError(_unreachable(exc))
    if not isinstance(exc, ApiException):
        return CliError(f"unexpected failure talking to the API server: {exc!r}")
    if exc.status == 404 and name and _is_missing_object(exc):
        return CliError(f'model "{name}" not found in namespace "{namespace}"')
    if exc.status == 404:
        return CliError(f"the API server does not know {RESOURCE}: install the CRDs (crds/) first")
    if exc.status in (401, 403):
        return CliError(f"not allowed: {_api_message(exc)}")
    return CliError(f"the API server answered {exc.status}: {_api_message(exc)}")


class ModelClient:
    """Model reads and annotation writes through a CustomObjectsApi-like object."""

    def __init__(self, api: Any):
        self.api = api
        self._common = {"group": contract.API_GROUP, "version": contract.API_VERSION,
                        "plural": contract.MODEL_PLURAL}

    def list(self, namespace: str | None) -> list[dict]:
        """Models in one namespace, or in all namespaces when namespace is None."""
        try:
            if namespace is None:
                found = self.api.list_cluster_custom_object(**self._common)
            else:
                found = self.api.list_namespaced_custom_object(namespace=namespace, **self._common)
        except (ApiException, urllib3.exceptions.HTTPError, OSError) as exc:
            raise explain(exc, namespace=namespace) from None
        return list(found.get("items") or [])

    def get(self, namespace: str, name: str) -> dict:
        try:
            return self.api.get_namespaced_custom_object(
                namespace=namespace, name=name, **self._common
            )
        except (ApiException, urllib3.exceptions.HTTPError, OSError) as exc:
            raise explain(exc, namespace=namespace, name=name) from None

    def annotate(self, namespace: str, name: str, annotations: Mapping[str, str]) -> dict:
        """Merge-patch metadata.annotations only (never spec)."""
        body = {"metadata": {"annotations": dict(annotations)}}
        try:
            return self.api.patch_namespaced_custom_object(
                namespace=namespace, name=name, body=body, **self._common
            )
        except (ApiException, urllib3.exceptions.HTTPError, OSError) as exc:
            raise explain(exc, namespace=namespace, name=name) from None
