"""Offline checks of crds/, deploy/ and the sample artifacts (no cluster needed).

The CRDs are hand-written, so these tests do what a generator would: names agree with
modelops/contract.py, every schema field is documented, printer columns, defaults and the status
schema are as designed, the samples validate against the CRD schemas (a small checker of the
structural-schema subset the CRDs use), their sha256 pins match the artifact files, retraining
reproduces those files byte for byte, and the operator's RBAC and Deployment are pinned.
The real API server's verdicts are in tests/cluster/test_crd_validation.py.
"""

from __future__ import annotations

import copy
import hashlib
import importlib.util
import re
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from modelops import contract

REPO = Path(__file__).resolve().parents[2]
SAMPLES = REPO / "deploy" / "samples"
ARTIFACTS = SAMPLES / "artifacts"
KINDS = {contract.MODEL_KIND: contract.MODEL_PLURAL, contract.PIPELINE_KIND: contract.PIPELINE_PLURAL}


def load_docs(path: Path) -> list[dict]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc]


def crd(kind: str) -> dict:
    (doc,) = load_docs(REPO / "crds" / f"{KINDS[kind]}.{contract.API_GROUP}.yaml")
    return doc


def schema(kind: str) -> dict:
    return crd(kind)["spec"]["versions"][0]["schema"]["openAPIV3Schema"]


def samples() -> list[dict]:
    return [doc for path in sorted(SAMPLES.glob("*.yaml")) if path.name != "kustomization.yaml"
            for doc in load_docs(path)]


def walk(node: dict, path: str):
    """Yield (path, schema) for every field below node: properties, items, map values."""
    for name, child in node.get("properties", {}).items():
        yield f"{path}.{name}", child
        yield from walk(child, f"{path}.{name}")
    for key, suffix in (("items", "[]"), ("additionalProperties", "{}")):
        if isinstance(node.get(key), dict):
            yield path + suffix, node[key]
            yield from walk(node[key], path + suffix)


def validate(value: Any, node: dict, path: str) -> list[str]:
    """Errors of value against a structural schema (the subset our CRDs use; no CEL)."""
    if node.get("x-kubernetes-int-or-string"):
        if isinstance(value, bool) or not isinstance(value, (int, str)):
            return [f"{path}: must be an integer or a string"]
    else:
        expected = {"object": dict, "array": list, "string": str, "boolean": bool,
                    "integer": int, "number": (int, float)}[node["type"]]
        if not isinstance(value, expected) or (isinstance(value, bool) and node["type"] != "boolean"):
            return [f"{path}: must be of type {node['type']}"]
    errors = []
    if "enum" in node and value not in node["enum"]:
        errors.append(f"{path}: {value!r} is not one of {node['enum']}")
    if isinstance(value, str):
        if "pattern" in node and not re.search(node["pattern"], value):
            errors.append(f"{path}: {value!r} does not match {node['pattern']}")
        if not node.get("minLength", 0) <= len(value) <= node.get("maxLength", len(value)):
            errors.append(f"{path}: length {len(value)} out of range")
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        low, high = node.get("minimum"), node.get("maximum")
        if low is not None and (value < low or (node.get("exclusiveMinimum") and value == low)):
            errors.append(f"{path}: {value} is below the minimum {low}")
        if high is not None and value > high:
            errors.append(f"{path}: {value} is above the maximum {high}")
    if isinstance(value, list):
        if not node.get("minItems", 0) <= len(value) <= node.get("maxItems", len(value)):
            errors.append(f"{path}: {len(value)} items out of range")
        for index, item in enumerate(value):
            errors += validate(item, node["items"], f"{path}[{index}]")
    if isinstance(value, dict):
        errors += validate_object(value, node, path)
    return errors


def validate_object(value: dict, node: dict, path: str) -> list[str]:
    errors = [f"{path}.{name}: Required" for name in node.get("required", []) if name not in value]
    if len(value) > node.get("maxProperties", len(value)):
        errors.append(f"{path}: more than {node['maxProperties']} entries")
    for name, item in value.items():
        if name in node.get("properties", {}):
            errors += validate(item, node["properties"][name], f"{path}.{name}")
        elif isinstance(node.get("additionalProperties"), dict):
            errors += validate(item, node["additionalProperties"], f"{path}.{name}")
        elif not node.get("x-kubernetes-preserve-unknown-fields") and path:
            errors.append(f"{path}.{name}: unknown field")
    return errors


# --- the CRDs --------------------------------------------------------------------------------
@pytest.mark.parametrize("kind,short", [(contract.MODEL_KIND, "mdl"), (contract.PIPELINE_KIND, "mpl")])
def test_crd_names_agree_with_the_contract(kind, short):
    doc = crd(kind)
    plural = KINDS[kind]
    assert doc["metadata"]["name"] == f"{plural}.{contract.API_GROUP}"
    assert doc["spec"]["group"] == contract.API_GROUP and doc["spec"]["scope"] == "Namespaced"
    assert doc["spec"]["names"] == {"kind": kind, "listKind": f"{kind}List", "plural": plural,
                                    "singular": kind.lower(), "shortNames": [short],
                                    "categories": ["modelops"]}
    (version,) = doc["spec"]["versions"]
    assert (version["name"], version["served"], version["storage"]) == (contract.API_VERSION, True, True)
    assert version["subresources"] == {"status": {}}


@pytest.mark.parametrize("kind", KINDS)
def test_every_schema_field_has_a_description(kind):
    missing = [path for path, node in walk(schema(kind), "")
               if not node.get("description") and not path.startswith(".metadata")]
    assert missing == []
    assert schema(kind)["description"]


@pytest.mark.parametrize("kind", KINDS)
def test_every_cel_rule_explains_itself_by_field(kind):
    nodes = [schema(kind)] + [node for _, node in walk(schema(kind), "")]
    rules = [rule for node in nodes for rule in node.get("x-kubernetes-validations", [])]
    assert rules
    for rule in rules:
        assert re.match(r"'?(spec|metadata)\.", rule["message"]), rule


@pytest.mark.parametrize("kind,columns", [
    (contract.MODEL_KIND, [("Ready", "string", '.status.conditions[?(@.type=="Ready")].status'),
                           ("Serving", "string", ".status.servingVersion"),
                           ("Desired", "string", ".spec.version"),
                           ("Canary", "number",
                            '.status.revisions[?(@.phase=="Canary")].canary.weight'),
                           ("Error Rate", "number", ".status.analysis.errorRate"),
                           ("Reason", "string", '.status.conditions[?(@.type=="Ready")].reason'),
                           ("Age", "date", ".metadata.creationTimestamp")]),
    (contract.PIPELINE_KIND, [("Ready", "string", '.status.conditions[?(@.type=="Ready")].status'),
                              ("Reason", "string", '.status.conditions[?(@.type=="Ready")].reason'),
                              ("Age", "date", ".metadata.creationTimestamp")]),
])
def test_printer_columns(kind, columns):
    all_columns = crd(kind)["spec"]["versions"][0]["additionalPrinterColumns"]
    default = [(c["name"], c["type"], c["jsonPath"]) for c in all_columns if not c.get("priority")]
    assert default == columns
    assert not {c["name"].lower() for c in all_columns} & {"name", "namespace"}


MODEL_DEFAULTS = {
    "method": "predict", "replicas": 1, "suspend": False, "serving": {}, "serving.workers": 1,
    "serving.threads": 4, "serving.batch": {}, "serving.batch.maxSize": 1,
    "serving.batch.maxWaitMs": 5, "rollback": {}, "rollback.enabled": True,
    "rollback.dryRun": False, "rollback.errorRateThreshold": 0.05, "rollback.window": "2m",
    "rollback.interval": "15s", "rollback.consecutiveBreaches": 3, "rollback.minRequests": 50,
    "rollback.minScoredRows": 100,
    "rollback.bakeWindow": "30m", "rollback.keepPrevious": 1,
    "rollback.progressDeadlineSeconds": 600, "rollback.minJudgedWindows": 3,
    "rollback.onBakeTimeout": "Hold", "rollout.shadow.percent": 100,
    "rollout.shadow.minRows": 200, "rollout.shadow.maxDisagreement": 0.05,
    "rollout.shadow.maxErrorRate": 0.01, "rollout.shadow.tolerance": 0.01,
    "rollout.shadow.maxDuration": "30m", "rollout.canary.steps": [10, 50],
    "rollout.canary.stepDuration": "1m", "rollout.canary.minRequests": 50,
    "rollout.canary.maxErrorRate": 0.01,
}
PIPELINE_DEFAULTS = {"steps[].input": "previous", "timeoutSeconds": 5, "replicas": 1, "suspend": False}


@pytest.mark.parametrize("kind,expected", [(contract.MODEL_KIND, MODEL_DEFAULTS),
                                           (contract.PIPELINE_KIND, PIPELINE_DEFAULTS)])
def test_spec_defaults(kind, expected):
    spec = schema(kind)["properties"]["spec"]
    defaults = {path[1:]: node["default"] for path, node in walk(spec, "") if "default" in node}
    assert defaults == expected
    for path, node in walk(spec, ""):
        if "default" in node:
            assert validate(node["default"], node, path) == []


@pytest.mark.parametrize("kind,fields", [
    (contract.MODEL_KIND, {"observedGeneration", "mlflow", "desiredVersion", "servingVersion", "lastGoodVersion",
                           "servingRevision", "legacyRevision", "servingSince", "lastGoodRevision", "rollout",
                           "url", "rollback", "analysis", "history", "conditions",
                           "desiredRevision", "rollbackRequest", "suspendedAt", "revisions"}),
    (contract.PIPELINE_KIND, {"observedGeneration", "url", "steps", "conditions"}),
])
def test_status_is_typed_and_keeps_unknown_fields(kind, fields):
    status = schema(kind)["properties"]["status"]
    assert status["x-kubernetes-preserve-unknown-fields"] is True
    assert set(status["properties"]) == fields
    condition = status["properties"]["conditions"]["items"]["properties"]
    assert set(condition) == {"type", "status", "reason", "message", "lastTransitionTime",
                              "observedGeneration"}


# --- samples and artifacts -------------------------------------------------------------------
def test_samples_validate_against_the_crd_schemas():
    docs = samples()
    assert sorted((d["kind"], d["metadata"]["name"]) for d in docs) == [
        ("Model", "diagnosis"), ("Model", "house-price"), ("Model", "iris"),
        ("ModelPipeline", "house-price-diagnosis")]
    for doc in docs:
        assert doc["apiVersion"] == contract.API_GROUP_VERSION
        assert validate(doc, schema(doc["kind"]), "") == [], doc["metadata"]["name"]


def test_the_schema_checker_catches_bad_samples():
    bad = copy.deepcopy(next(d for d in samples() if d["metadata"]["name"] == "iris"))
    bad["spec"].update(replicas=101, method="transform", replica=2)
    bad["spec"]["artifact"]["sha256"] = "ABC"
    errors = validate(bad, schema(contract.MODEL_KIND), "")
    assert {e.split(":")[0] for e in errors} == {".spec.replicas", ".spec.method", ".spec.replica",
                                                 ".spec.artifact.sha256"}


def test_sample_pins_match_the_artifact_files():
    kustomization = yaml.safe_load((SAMPLES / "kustomization.yaml").read_text())
    (generator,) = kustomization["configMapGenerator"]
    assert generator["options"]["disableNameSuffixHash"] is True
    shipped = sorted(generator["files"])
    assert shipped == sorted(f"artifacts/{p.name}" for p in ARTIFACTS.iterdir())
    models = [d for d in samples() if d["kind"] == contract.MODEL_KIND]
    assert len(models) == len(shipped) == 3
    for model in models:
        artifact = model["spec"]["artifact"]
        name, key = artifact["uri"].removeprefix("configMap://").split("/")
        assert name == generator["name"]
        data = (ARTIFACTS / key).read_bytes()
        assert len(data) < 100_000
        assert hashlib.sha256(data).hexdigest() == artifact["sha256"], model["metadata"]["name"]


def load_train_module():
    spec = importlib.util.spec_from_file_location("sample_training", REPO / "examples" / "train.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the class is built
    spec.loader.exec_module(module)
    return module


def test_retraining_reproduces_the_committed_artifacts(tmp_path):
    """The committed models are what train.py makes: same predictions on probe rows. (Bytes
    are not compared: in one long pytest process the pickles of equal models have differed.)
    Probabilities are compared loosely: lbfgs stops at its tolerance, and where it stops
    depends on the CPU's BLAS kernels (measured: up to 0.007 apart between two machines)."""
    import joblib
    import numpy as np
    train = load_train_module()
    train.write_artifacts(train.train_all(), tmp_path)
    probes = np.random.default_rng(0).normal(size=(64, 64))
    for committed in sorted(ARTIFACTS.glob("*.joblib")):
        old, new = joblib.load(committed), joblib.load(tmp_path / committed.name)
        rows = probes[:, :old.n_features_in_] * 3
        np.testing.assert_allclose(new.predict(rows), old.predict(rows), rtol=1e-9,
                                   err_msg=f"rerun `python examples/train.py`: {committed.name}")
        if hasattr(old, "predict_proba"):
            np.testing.assert_allclose(new.predict_proba(rows), old.predict_proba(rows),
                                       atol=0.02, err_msg=committed.name)


def test_train_check_reports_a_wrong_pin(tmp_path):
    train = load_train_module()
    for path in SAMPLES.glob("*.yaml"):
        (tmp_path / path.name).write_text(path.read_text())
    assert train.check_pins(tmp_path, ARTIFACTS) == []
    pipeline = tmp_path / "pipeline.yaml"
    first_pin = re.search(r"sha256: ([0-9a-f]{64})", pipeline.read_text()).group(1)
    pipeline.write_text(pipeline.read_text().replace(first_pin, "0" * 64))
    (problem,) = train.check_pins(tmp_path, ARTIFACTS)
    assert "house-price" in problem and first_pin in problem
    assert train.update_pins(tmp_path, {"house-price.joblib": first_pin}) == ["pipeline.yaml"]
    assert train.check_pins(tmp_path, ARTIFACTS) == []


# --- the install base (deploy/) --------------------------------------------------------------
RBAC_GOLDEN = {
    ("modelops.io", "models"): ["list", "watch"],
    ("modelops.io", "modelpipelines"): ["list", "watch"],
    ("modelops.io", "models/status"): ["patch"],
    ("modelops.io", "modelpipelines/status"): ["patch"],
    ("modelops.io", "models/finalizers"): ["update"],
    ("modelops.io", "modelpipelines/finalizers"): ["update"],
    ("apps", "deployments"): ["get", "list", "watch", "create", "patch", "delete"],
    ("", "services"): ["get", "list", "watch", "create", "patch", "delete"],
    ("", "secrets"): ["create"],
    ("", "pods"): ["list", "watch", "patch"],
    ("", "events"): ["create"],
    ("apiextensions.k8s.io", "customresourcedefinitions"): ["get", "list", "watch"],
    ("", "namespaces"): ["list", "watch"],
}


def deploy_objects() -> dict[str, dict]:
    return {doc["kind"]: doc for name in ("namespace.yaml", "rbac.yaml", "operator.yaml")
            for doc in load_docs(REPO / "deploy" / name)}


def test_kustomization_installs_everything_into_the_operator_namespace():
    kustomization = yaml.safe_load((REPO / "deploy" / "kustomization.yaml").read_text())
    assert kustomization["namespace"] == contract.OPERATOR_NAMESPACE
    assert kustomization["resources"] == ["../crds", "namespace.yaml", "rbac.yaml", "operator.yaml"]
    crds = yaml.safe_load((REPO / "crds" / "kustomization.yaml").read_text())
    assert sorted(crds["resources"]) == sorted(p.name for p in (REPO / "crds").glob("*.*.yaml"))
    objects = deploy_objects()
    assert objects["Namespace"]["metadata"]["name"] == contract.OPERATOR_NAMESPACE
    assert objects["Namespace"]["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"


def test_rbac_is_the_golden_least_privilege_list():
    objects = deploy_objects()
    granted: dict[tuple[str, str], list[str]] = {}
    for rule in objects["ClusterRole"]["rules"]:
        assert "resourceNames" not in rule and "nonResourceURLs" not in rule
        for group in rule["apiGroups"]:
            for resource in rule["resources"]:
                assert (group, resource) not in granted, "one rule per resource keeps the list auditable"
                granted[(group, resource)] = rule["verbs"]
    assert granted == RBAC_GOLDEN
    binding = objects["ClusterRoleBinding"]
    assert binding["roleRef"] == {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole",
                                  "name": objects["ClusterRole"]["metadata"]["name"]}
    account = objects["ServiceAccount"]["metadata"]
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": account["name"],
                                    "namespace": contract.OPERATOR_NAMESPACE}]


def test_operator_deployment():
    objects = deploy_objects()
    deployment = objects["Deployment"]
    assert (deployment["spec"]["replicas"], deployment["spec"]["strategy"]) == (1, {"type": "Recreate"})
    pod = deployment["spec"]["template"]
    assert deployment["spec"]["selector"]["matchLabels"].items() <= pod["metadata"]["labels"].items()
    assert pod["spec"]["serviceAccountName"] == objects["ServiceAccount"]["metadata"]["name"]
    (container,) = pod["spec"]["containers"]
    assert (container["image"], container["imagePullPolicy"]) == ("modelops/operator:0.1.0", "IfNotPresent")
    assert container["command"] == ["python", "-m", "modelops.operator"]
    assert container["env"] == [{"name": "MODELOPS_OPERATOR_SERVING_IMAGE",
                                 "value": contract.DEFAULT_SERVING_IMAGE}]
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert ports == {"health": contract.OPERATOR_HEALTH_PORT, "metrics": contract.OPERATOR_METRICS_PORT}
    assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "health"}
    assert set(container["resources"]) == {"requests", "limits"}
    annotations = pod["metadata"]["annotations"]
    assert annotations == {"prometheus.io/scrape": "true", "prometheus.io/path": contract.PATH_METRICS,
                           "prometheus.io/port": str(contract.OPERATOR_METRICS_PORT)}


def test_operator_pod_is_restricted_with_a_read_only_root():
    pod = deploy_objects()["Deployment"]["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] == 65532
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    (container,) = pod["containers"]
    security = container["securityContext"]
    assert security["allowPrivilegeEscalation"] is False
    assert security["readOnlyRootFilesystem"] is True
    assert security["capabilities"] == {"drop": ["ALL"]}
    (mount,) = container["volumeMounts"]
    assert mount["mountPath"] == contract.SCRATCH_MOUNT
    (volume,) = pod["volumes"]
    assert volume["name"] == mount["name"] and "emptyDir" in volume


def test_metrics_service_selects_the_operator_pod():
    objects = deploy_objects()
    service, pod = objects["Service"], objects["Deployment"]["spec"]["template"]
    assert service["spec"]["selector"].items() <= pod["metadata"]["labels"].items()
    (port,) = service["spec"]["ports"]
    assert (port["port"], port["targetPort"]) == (contract.OPERATOR_METRICS_PORT, "metrics")


def test_the_crds_shadow_defaults_are_the_operators():
    """A `shadow: {}` the API server filled with the CRD's defaults means what an absent field
    means to the operator (one policy, whichever side fills it in)."""
    from modelops.operator.shadow_gate import ShadowPolicy

    shadow = schema(contract.MODEL_KIND)["properties"]["spec"]["properties"]["rollout"][
        "properties"]["shadow"]["properties"]
    filled = {key: node["default"] for key, node in shadow.items()}
    assert ShadowPolicy.from_spec(filled) == ShadowPolicy.from_spec({}) == ShadowPolicy()


@pytest.mark.parametrize("header", ["X-User", "x-user-id-2", "X_User", "X.User", "X User",
                                    "A" * 64, "A" * 65])
def test_the_crd_takes_the_hash_headers_the_serving_pods_take(header):
    """One rule for spec.rollout.canary.hashHeader: the CRD's, the operator's and the
    serving pods' (which refuse the whole annotation set otherwise)."""
    import re

    node = schema(contract.MODEL_KIND)["properties"]["spec"]["properties"]["rollout"][
        "properties"]["canary"]["properties"]["hashHeader"]
    by_crd = bool(re.match(node["pattern"], header)) and len(header) <= node["maxLength"]
    assert by_crd == bool(re.match(contract.CANARY_HASH_HEADER_PATTERN, header))


def test_the_crds_canary_defaults_are_the_operators():
    from modelops.operator.canary_gate import CanaryPolicy

    canary = schema(contract.MODEL_KIND)["properties"]["spec"]["properties"]["rollout"][
        "properties"]["canary"]["properties"]
    filled = {key: node["default"] for key, node in canary.items() if "default" in node}
    assert CanaryPolicy.from_spec(filled) == CanaryPolicy.from_spec({}) == CanaryPolicy()
