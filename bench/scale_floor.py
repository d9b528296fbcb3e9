"""The floor for bench/scale.py: the least work any operator must make the control plane do for
N Models, done by a plain client with no operator running.

For each Model the client creates the Model, server-side applies the Deployment and the Service
the operator's own builders make, creates the feedback Secret and patches the Model's status to
its generation: the same children, one write each, no reads, no Events, no watches of its own.
The control plane does the rest as it does for the operator (ReplicaSets, pods, EndpointSlices,
their status updates and Events). What the operator run costs beyond this is the operator's
overhead; what this costs is the control plane's, which no operator can go under on this machine.
"""

from __future__ import annotations

import secrets

import kubernetes

from modelops import contract
from modelops.operator.builders import build_deployment, build_feedback_secret, build_service
from modelops.operator.kube import APPLY_PATCH
from modelops.operator.spec import parse_model

FIELD_MANAGER = "scale-floor"


class FloorClient:
    """Makes Model number i and its children directly (`one(i)`, called from the bench's pool)."""

    def __init__(self, api: kubernetes.client.ApiClient, namespace: str, spec: dict):
        self.namespace, self.spec = namespace, spec
        self.parsed = parse_model(spec)
        self.custom = kubernetes.client.CustomObjectsApi(api)
        self.apps = kubernetes.client.AppsV1Api(api)
        self.core = kubernetes.client.CoreV1Api(api)

    def one(self, i: int) -> None:
        name, ns = f"m{i:04d}", self.namespace
        model = self.custom.create_namespaced_custom_object(
            contract.API_GROUP, contract.API_VERSION, ns, contract.MODEL_PLURAL,
            {"apiVersion": contract.API_GROUP_VERSION, "kind": contract.MODEL_KIND,
             "metadata": {"name": name}, "spec": self.spec})
        owner = {"apiVersion": contract.API_GROUP_VERSION, "kind": contract.MODEL_KIND,
                 "name": name, "uid": model["metadata"]["uid"], "controller": True,
                 "blockOwnerDeletion": True}
        deployment = build_deployment(name, self.parsed, image=contract.DEFAULT_SERVING_IMAGE)
        service = build_service(name, revision=self.parsed.revision, version=self.parsed.version)
        secret = build_feedback_secret(name, secrets.token_urlsafe(32))
        for child in (deployment, service, secret):
            child["metadata"].update(namespace=ns, ownerReferences=[owner])
        self.apps.patch_namespaced_deployment(deployment["metadata"]["name"], ns, deployment,
                                              field_manager=FIELD_MANAGER, force=True,
                                              _content_type=APPLY_PATCH)
        self.core.patch_namespaced_service(name, ns, service, field_manager=FIELD_MANAGER,
                                           force=True, _content_type=APPLY_PATCH)
        self.core.create_namespaced_secret(ns, secret)
        self.custom.patch_namespaced_custom_object_status(
            contract.API_GROUP, contract.API_VERSION, ns, contract.MODEL_PLURAL, name,
            {"status": {"observedGeneration": model["metadata"]["generation"]}})
