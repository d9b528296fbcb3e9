"""`kubectl apply -k deploy/` and the samples on a real control plane.

Installs modelops the way the README says, then checks what the server holds: the namespace,
the CRDs Established, the operator's RBAC granting exactly what deploy/rbac.yaml lists (asked of
the server's authorizer, compared with an unprivileged ServiceAccount), the Deployment, a pod
from its template admitted under Pod Security "restricted", a second apply changing nothing,
the samples accepted with their artifact bytes intact, and `kubectl explain` documenting the
API. Without a node the operator pod never runs here; tests/e2e runs it.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import time
from pathlib import Path

import pytest
import yaml

from modelops import contract

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy"
OPERATOR = "modelops-operator"
OPERATOR_ACCOUNT = f"system:serviceaccount:{contract.OPERATOR_NAMESPACE}:{OPERATOR}"


@pytest.fixture(scope="module")
def installed(control_plane):
    """The result of `kubectl apply -k deploy/`; uninstalled afterwards unless it was there before."""
    existed = control_plane.kubectl("get", "namespace", contract.OPERATOR_NAMESPACE, check=False)
    result = control_plane.kubectl("apply", "-k", str(DEPLOY))
    control_plane.kubectl("wait", "--for=condition=Established", "--timeout=60s",
                          f"crd/{contract.MODEL_PLURAL}.{contract.API_GROUP}",
                          f"crd/{contract.PIPELINE_PLURAL}.{contract.API_GROUP}")
    yield result
    if existed.returncode != 0:  # the CRDs stay: other tests of the session use them
        # Waits (bounded) so a later `apply -k deploy/` does not meet a Terminating namespace.
        control_plane.kubectl("delete", "namespace", contract.OPERATOR_NAMESPACE, "--timeout=90s",
                              check=False)
        control_plane.kubectl("delete", f"clusterrole/{OPERATOR}", f"clusterrolebinding/{OPERATOR}",
                              "--ignore-not-found", check=False)


def test_apply_creates_namespace_crds_rbac_and_operator(control_plane, installed):
    applied = {line.split()[0] for line in installed.stdout.splitlines()}
    assert applied == {
        f"namespace/{contract.OPERATOR_NAMESPACE}",
        f"customresourcedefinition.apiextensions.k8s.io/{contract.MODEL_PLURAL}.{contract.API_GROUP}",
        f"customresourcedefinition.apiextensions.k8s.io/{contract.PIPELINE_PLURAL}.{contract.API_GROUP}",
        f"serviceaccount/{OPERATOR}", f"clusterrole.rbac.authorization.k8s.io/{OPERATOR}",
        f"clusterrolebinding.rbac.authorization.k8s.io/{OPERATOR}",
        f"service/{OPERATOR}-metrics", f"deployment.apps/{OPERATOR}",
    }
    deployment = json.loads(control_plane.kubectl(
        "get", "deployment", OPERATOR, "-n", contract.OPERATOR_NAMESPACE, "-o", "json").stdout)
    assert deployment["spec"]["replicas"] == 1
    assert deployment["spec"]["strategy"] == {"type": "Recreate"}
    assert deployment["spec"]["template"]["spec"]["serviceAccountName"] == OPERATOR
    control_plane.kubectl("get", "serviceaccount", OPERATOR, "-n", contract.OPERATOR_NAMESPACE)
    control_plane.kubectl("get", "service", f"{OPERATOR}-metrics", "-n", contract.OPERATOR_NAMESPACE)


def test_second_apply_changes_nothing(control_plane, installed):
    again = control_plane.kubectl("apply", "-k", str(DEPLOY)).stdout.splitlines()
    assert again and all(line.endswith(" unchanged") for line in again), again


def test_operator_pod_is_admitted_under_pod_security_restricted(control_plane, installed):
    deployment = json.loads(control_plane.kubectl(
        "get", "deployment", OPERATOR, "-n", contract.OPERATOR_NAMESPACE, "-o", "json").stdout)
    template = deployment["spec"]["template"]
    pod = {"apiVersion": "v1", "kind": "Pod",
           "metadata": {"name": "admission-check", "labels": template["metadata"]["labels"]},
           "spec": template["spec"]}
    dry_run = ("create", "--dry-run=server", "-n", contract.OPERATOR_NAMESPACE, "-f", "-")
    assert "created (server dry run)" in control_plane.kubectl(*dry_run, input=json.dumps(pod)).stdout
    # The control: the namespace really enforces "restricted" (a bare pod is refused).
    bare = {**pod, "spec": {"containers": [{"name": "c", "image": "busybox"}]}}
    refused = control_plane.kubectl(*dry_run, input=json.dumps(bare), check=False)
    assert refused.returncode != 0 and 'violates PodSecurity "restricted' in refused.stderr


def granted_rules(control_plane, user: str, namespace: str) -> dict[str, set[str]]:
    """{resource: verbs} the server's authorizer grants `user` in `namespace` (resource rules)."""
    listing = control_plane.kubectl("auth", "can-i", "--list", f"--as={user}", "-n", namespace).stdout
    rules: dict[str, set[str]] = {}
    for line in listing.splitlines()[1:]:
        match = re.match(r"^(\S+)\s+\[\]\s+\[\]\s+\[(.*)\]$", line.strip())
        if match:
            rules.setdefault(match.group(1), set()).update(match.group(2).split())
    return rules


def declared_rules() -> dict[str, set[str]]:
    """{resource[.group]: verbs} as deploy/rbac.yaml's ClusterRole declares them."""
    role = next(doc for doc in yaml.safe_load_all((DEPLOY / "rbac.yaml").read_text())
                if doc["kind"] == "ClusterRole")
    rules: dict[str, set[str]] = {}
    for rule in role["rules"]:
        for group in rule["apiGroups"]:
            for resource in rule["resources"]:
                base, _, sub = resource.partition("/")
                name = f"{base}.{group}" if group else base
                rules.setdefault(f"{name}/{sub}" if sub else name, set()).update(rule["verbs"])
    return rules


def test_operator_gets_exactly_the_declared_rbac(control_plane, installed, namespace):
    operator = granted_rules(control_plane, OPERATOR_ACCOUNT, namespace)
    baseline = granted_rules(control_plane, f"system:serviceaccount:{namespace}:default", namespace)
    extra = {resource: verbs - baseline.get(resource, set()) for resource, verbs in operator.items()}
    assert {resource: verbs for resource, verbs in extra.items() if verbs} == declared_rules()
    for verb, resource in [("get", "secrets"), ("list", "configmaps"), ("create", "models.modelops.io"),
                           ("update", "models.modelops.io"), ("delete", "pods")]:
        answer = control_plane.kubectl("auth", "can-i", verb, resource, f"--as={OPERATOR_ACCOUNT}",
                                       "-n", namespace, check=False)
        assert answer.stdout.strip() == "no", (verb, resource)


def test_samples_are_accepted_with_their_artifacts_intact(control_plane, installed, namespace):
    control_plane.kubectl("apply", "-k", str(DEPLOY / "samples"), "-n", namespace)
    configmap = json.loads(control_plane.kubectl(
        "get", "configmap", "sample-artifacts", "-n", namespace, "-o", "json").stdout)
    artifacts = {key: base64.b64decode(value) for key, value in configmap["binaryData"].items()}
    models = json.loads(control_plane.kubectl("get", "models", "-n", namespace, "-o", "json").stdout)
    pins = {m["metadata"]["name"]: m["spec"]["artifact"] for m in models["items"]}
    assert set(pins) == {"iris", "house-price", "diagnosis"}
    for name, artifact in pins.items():
        key = artifact["uri"].removeprefix("configMap://sample-artifacts/")
        assert hashlib.sha256(artifacts[key]).hexdigest() == artifact["sha256"], name
    pipeline = json.loads(control_plane.kubectl(
        "get", "modelpipeline", "house-price-diagnosis", "-n", namespace, "-o", "json").stdout)
    assert [(s["model"], s["input"]) for s in pipeline["spec"]["steps"]] == [
        ("house-price", "previous"), ("diagnosis", "features+previous")]


def explain(control_plane, field: str, deadline_seconds: float = 60.0) -> str:
    """`kubectl explain field`, retried while the server publishes the new CRDs' OpenAPI."""
    deadline = time.monotonic() + deadline_seconds
    while True:
        result = control_plane.kubectl("explain", field, check=False)
        if result.returncode == 0 or time.monotonic() > deadline:
            assert result.returncode == 0, result.stderr
            return result.stdout
        time.sleep(1)


def test_kubectl_explain_documents_the_api(control_plane, installed):
    rollback = explain(control_plane, "model.spec.rollback")
    assert "bake window" in rollback
    for name in ("errorRateThreshold", "window", "interval", "consecutiveBreaches", "minRequests",
                 "bakeWindow", "keepPrevious", "progressDeadlineSeconds"):
        assert re.search(rf"^\s+{name}\s+<", rollback, re.MULTILINE), name
    steps = explain(control_plane, "modelpipeline.spec.steps")
    assert "features+previous" in steps
