"""Children on the real control plane: the ownership rule (a foreign object with a child's name
is reported, never touched), a child refused by a ValidatingAdmissionPolicy shown with the API
server's message, and idle passes that write nothing and post no Event, with resource
quantities the API server rewrites (`cpu: 2`, "0.5", 1024Mi)."""

from __future__ import annotations

import time
import uuid

import kubernetes
import pytest
import requests

from modelops import contract
from tests.cluster.support import Cluster, wait_for
from tests.cluster.test_model_operator import _model, _revision, _serve

PIPELINE = contract.PIPELINE_PLURAL


def foreign_service(cluster: Cluster, namespace: str, name: str) -> dict:
    body = {"apiVersion": "v1", "kind": "Service",
            "metadata": {"name": name, "labels": {"app": name}},
            "spec": {"selector": {"app": name},
                     "ports": [{"name": "pg", "port": 5432, "targetPort": 5432}]}}
    return cluster.core.create_namespaced_service(namespace, body).to_dict()


def stalled(cluster, namespace, name, plural=contract.MODEL_PLURAL):
    status = cluster.model(namespace, name, plural).get("status") or {}
    found = {c["type"]: c for c in status.get("conditions") or []}
    stall = found.get("Stalled") or {}
    return stall.get("status") == "True" and (stall["reason"], stall["message"])


def test_a_foreign_service_with_the_models_name_is_reported_and_left_untouched(cluster, namespace):
    before = foreign_service(cluster, namespace, "fraud")
    cluster.create(namespace, _model("fraud"))
    reason, message = wait_for(lambda: stalled(cluster, namespace, "fraud"), what="Stalled")
    assert reason == "ChildNameConflict"
    assert message.startswith("Service fraud already exists and is controlled by no controller")
    assert cluster.condition(namespace, "fraud") == ("False", "ChildNameConflict")
    time.sleep(3)  # three passes
    after = cluster.core.read_namespaced_service("fraud", namespace)
    assert after.metadata.resource_version == before["metadata"]["resource_version"]
    assert after.spec.selector == {"app": "fraud"} and after.metadata.owner_references is None
    assert after.spec.ports[0].port == 5432
    # the Deployment is still made (nothing else is named fraud-<hash>); deleting the Model
    # later garbage-collects it, not the foreign Service
    wait_for(lambda: _revision() in cluster.deployments(namespace, "fraud"), what="Deployment")
    cluster.core.delete_namespaced_service("fraud", namespace)
    wait_for(lambda: cluster.service_revision(namespace, "fraud") == _revision(), what="Service")
    wait_for(lambda: not stalled(cluster, namespace, "fraud"), what="the conflict cleared")


def test_router_names_cannot_clash_with_models_and_a_foreign_router_service_is_reported(
        cluster, namespace):
    with pytest.raises(kubernetes.client.ApiException) as refused:
        cluster.create(namespace, _model("scoring-router"))
    assert "may not end in -router" in refused.value.body
    foreign_service(cluster, namespace, "scoring-router")
    cluster.create(namespace, _model("income"))
    cluster.create(namespace, {"apiVersion": contract.API_GROUP_VERSION,
                               "kind": contract.PIPELINE_KIND, "metadata": {"name": "scoring"},
                               "spec": {"steps": [{"name": "s1", "model": "income"}]}}, PIPELINE)
    reason, message = wait_for(lambda: stalled(cluster, namespace, "scoring", PIPELINE),
                               what="pipeline Stalled")
    assert (reason, message.split(" already")[0]) == ("ChildNameConflict", "Service scoring-router")
    service = cluster.core.read_namespaced_service("scoring-router", namespace)
    assert service.spec.selector == {"app": "scoring-router"}


def test_a_deployment_refused_by_admission_policy_shows_the_api_servers_message(
        cluster, control_plane, namespace):
    name = f"deny-{uuid.uuid4().hex[:6]}"
    policy = {"apiVersion": "admissionregistration.k8s.io/v1",
              "kind": "ValidatingAdmissionPolicy", "metadata": {"name": name},
              "spec": {"failurePolicy": "Fail",
                       "matchConstraints": {"resourceRules": [{
                           "apiGroups": ["apps"], "apiVersions": ["v1"],
                           "operations": ["CREATE", "UPDATE"], "resources": ["deployments"]}]},
                       "validations": [{
                           "expression": "has(object.metadata.labels) && "
                                         "'team' in object.metadata.labels",
                           "message": "every Deployment needs a team label"}]}}
    binding = {"apiVersion": "admissionregistration.k8s.io/v1",
               "kind": "ValidatingAdmissionPolicyBinding", "metadata": {"name": name},
               "spec": {"policyName": name, "validationActions": ["Deny"],
                        "matchResources": {"namespaceSelector": {"matchLabels": {
                            "kubernetes.io/metadata.name": namespace}}}}}
    admission = kubernetes.client.AdmissionregistrationV1Api(control_plane.api_client())
    admission.create_validating_admission_policy(policy)
    admission.create_validating_admission_policy_binding(binding)
    try:
        probe = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "probe"},
                 "spec": {"selector": {"matchLabels": {"a": "b"}}, "template": {
                     "metadata": {"labels": {"a": "b"}},
                     "spec": {"containers": [{"name": "c", "image": "x"}]}}}}

        def policy_active():  # bindings take effect asynchronously
            try:
                cluster.apps.create_namespaced_deployment(namespace, probe, dry_run="All")
            except kubernetes.client.ApiException as error:
                return error.status == 422 or error.status == 403
            return False
        wait_for(policy_active, timeout=30, what="the policy to deny")
        cluster.create(namespace, _model("iris"))
        reason, message = wait_for(lambda: stalled(cluster, namespace, "iris"), what="Stalled")
        assert reason == "ChildRejected"
        assert message.startswith(f"the API server refused Deployment iris-{_revision()}: ")
        assert "every Deployment needs a team label" in message
        # the Service went through (the Service comes first; the policy is on Deployments)
        assert cluster.service_revision(namespace, "iris") == _revision()
    finally:
        admission.delete_validating_admission_policy_binding(name)
        admission.delete_validating_admission_policy(name)
    # once the policy is gone, the next pass applies it and clears the condition
    wait_for(lambda: _revision() in cluster.deployments(namespace, "iris"), timeout=60,
             what="Deployment after the policy went")
    wait_for(lambda: not stalled(cluster, namespace, "iris"), what="ChildRejected cleared")


CANONICALISED = {"requests": {"cpu": "0.5", "memory": "1024Mi"}, "limits": {"cpu": 2,
                                                                             "memory": "2048Mi"}}


def passes(operator) -> float:
    text = requests.get(f"http://127.0.0.1:{operator.metrics_port}/metrics", timeout=5).text
    return sum(float(line.split()[-1]) for line in text.splitlines()
               if line.startswith('modelops_operator_passes_total{kind="models"}'))


def test_idle_passes_write_nothing_and_post_no_event_with_canonicalised_quantities(
        cluster, operator, namespace):
    cluster.create(namespace, _model("iris", resources=CANONICALISED))
    revision = _revision(resources=CANONICALISED)
    _serve(cluster, namespace, "iris", revision)
    wait_for(lambda: cluster.condition(namespace, "iris") == ("True", "Serving"), what="Serving")
    stored = cluster.deployments(namespace, "iris")[revision].spec.template.spec.containers[0]
    assert stored.resources.limits["cpu"] == "2" and stored.resources.requests["cpu"] == "500m"
    assert stored.resources.requests["memory"] == "1Gi"  # the API server rewrote all three
    wait_for(lambda: ("Normal", "Promoted") in cluster.events(namespace, "iris"),
             what="the Promoted Event")  # the rollout's last Event, before counting idle ones
    time.sleep(2)  # let the last Events of the rollout land

    def versions():
        return {"model": cluster.model(namespace, "iris")["metadata"]["resourceVersion"],
                "deployments": sorted(d.metadata.resource_version
                                      for d in cluster.deployments(namespace, "iris").values()),
                "service": cluster.core.read_namespaced_service(
                    "iris", namespace).metadata.resource_version,
                "pods": sorted(p.metadata.resource_version for p in cluster.core.list_namespaced_pod(
                    namespace, label_selector=f"{contract.LABEL_MODEL}=iris").items)}

    before, events = versions(), cluster.events(namespace, "iris", ours_only=True)
    ran = passes(operator)
    time.sleep(21)  # the tick is 1 s here: at least 20 passes of this Model
    assert passes(operator) - ran >= 20
    assert versions() == before
    assert cluster.events(namespace, "iris", ours_only=True) == events
