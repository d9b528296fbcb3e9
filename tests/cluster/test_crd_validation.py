"""The CRDs on a real API server: bad specs refused naming the field, good ones defaulted.

Each row of the table is a good Model or ModelPipeline with one thing broken, applied with
kubectl the way a user or a GitOps tool would; the server must refuse it with a message that
names the offending field (schema rules, CEL rules and strict field validation alike). The
other tests read back what the server stored: defaults, every field round-tripping, every
artifact URI scheme, the status subresource, printer columns, short names and category.
"""

from __future__ import annotations

import copy
import json
import re
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest

from modelops import contract

SHA = "9f2c" * 16
DELETE = object()

GOOD_MODEL = {
    "apiVersion": contract.API_GROUP_VERSION, "kind": contract.MODEL_KIND,
    "metadata": {"name": "house-price"},
    "spec": {"version": "3", "artifact": {"uri": "https://models.example/house-price/3/model.joblib",
                                          "sha256": SHA}},
}
GOOD_PIPELINE = {
    "apiVersion": contract.API_GROUP_VERSION, "kind": contract.PIPELINE_KIND,
    "metadata": {"name": "house-price-diagnosis"},
    "spec": {"steps": [{"name": "price", "model": "house-price"},
                       {"name": "diagnosis", "model": "diagnosis", "input": "features+previous"}]},
}


@dataclass(frozen=True)
class Bad:
    """A good manifest with `changes` (dotted path -> value, or DELETE) that the server refuses."""

    id: str
    changes: dict[str, Any]
    field: str  # the field path the server's message must name
    hint: str = ""  # more text the message must carry (our CEL messages)
    base: dict = field(default_factory=lambda: GOOD_MODEL)


def changed(base: dict, changes: dict[str, Any]) -> dict:
    manifest = copy.deepcopy(base)
    for path, value in changes.items():
        *parents, leaf = path.split(".")
        node = manifest
        for key in parents:
            node = node[int(key)] if isinstance(node, list) else node.setdefault(key, {})
        if value is DELETE:
            del node[leaf]
        else:
            node[leaf] = value
    return manifest


def step(name: str, model: str = "m", **extra: str) -> dict:
    return {"name": name, "model": model, **extra}


BAD = [
    Bad("version-missing", {"spec.version": DELETE}, "spec.version: Required value"),
    Bad("version-not-a-label-value", {"spec.version": "v 1"}, "spec.version"),
    Bad("version-too-long", {"spec.version": "v" * 64}, "spec.version"),
    Bad("artifact-missing", {"spec.artifact": DELETE}, "spec.artifact: Required value"),
    Bad("uri-missing", {"spec.artifact.uri": DELETE}, "spec.artifact.uri: Required value"),
    Bad("uri-unknown-scheme", {"spec.artifact.uri": "gs://bucket/m.joblib"}, "spec.artifact.uri",
        "must start with file://, http://, https://, s3://, models:/, pvc:// or configMap://"),
    Bad("https-without-sha256", {"spec.artifact.sha256": DELETE}, "spec.artifact.sha256: Required value",
        "sha256sum model.joblib"),
    Bad("pvc-without-sha256", {"spec.artifact.uri": "pvc://models/m.joblib", "spec.artifact.sha256": DELETE},
        "spec.artifact.sha256: Required value", "required for every artifact"),
    Bad("configmap-without-sha256", {"spec.artifact.uri": "configMap://models/m.joblib",
                                     "spec.artifact.sha256": DELETE},
        "spec.artifact.sha256: Required value", "sha256sum"),
    Bad("file-without-sha256", {"spec.artifact.uri": "file:///models/m.joblib", "spec.artifact.sha256": DELETE},
        "spec.artifact.sha256: Required value", "sha256sum"),
    Bad("version-policy-unknown", {"spec.artifact.sklearnVersionPolicy": "ignore"},
        "spec.artifact.sklearnVersionPolicy"),
    Bad("trusted-type-not-dotted", {"spec.artifact.trustedTypes": ["os system"]},
        "spec.artifact.trustedTypes[0]"),
    Bad("http-without-host", {"spec.artifact.uri": "http:///m.joblib"}, "spec.artifact.uri", "host"),
    Bad("file-relative-path", {"spec.artifact.uri": "file://models/m.joblib"}, "spec.artifact.uri",
        "file:///<absolute path>"),
    Bad("pvc-without-path", {"spec.artifact.uri": "pvc://models"}, "spec.artifact.uri",
        "pvc://<claim>/<path>"),
    Bad("pvc-path-escapes", {"spec.artifact.uri": "pvc://models/a/../../etc/passwd"},
        "spec.artifact.uri", "without '..'"),
    Bad("configmap-without-key", {"spec.artifact.uri": "configMap://models"}, "spec.artifact.uri",
        "configMap://<name>/<key>"),
    Bad("configmap-bad-name", {"spec.artifact.uri": "configMap://Models/m.joblib"},
        "spec.artifact.uri", "configMap://<name>/<key>"),
    Bad("sha256-uppercase", {"spec.artifact.sha256": "A" * 64}, "spec.artifact.sha256"),
    Bad("sha256-short", {"spec.artifact.sha256": "abc"}, "spec.artifact.sha256"),
    Bad("format-unknown", {"spec.artifact.format": "pickle"}, "spec.artifact.format: Unsupported value"),
    Bad("method-unknown", {"spec.method": "transform"}, "spec.method: Unsupported value"),
    Bad("replicas-too-many", {"spec.replicas": 101}, "spec.replicas"),
    Bad("replicas-negative", {"spec.replicas": -1}, "spec.replicas"),
    Bad("replicas-not-a-number", {"spec.replicas": "two"}, "spec.replicas"),
    Bad("quantity-malformed", {"spec.resources.requests": {"cpu": "lots"}}, "spec.resources.requests.cpu"),
    Bad("requests-above-limits", {"spec.resources": {"requests": {"memory": "1Gi"},
                                                     "limits": {"memory": "512Mi"}}},
        "spec.resources.requests", "must not exceed spec.resources.limits"),
    Bad("workers-zero", {"spec.serving.workers": 0}, "spec.serving.workers"),
    Bad("threads-too-many", {"spec.serving.threads": 65}, "spec.serving.threads"),
    Bad("batch-too-big", {"spec.serving.batch.maxSize": 2000}, "spec.serving.batch.maxSize"),
    Bad("batch-wait-too-long", {"spec.serving.batch.maxWaitMs": 5000}, "spec.serving.batch.maxWaitMs"),
    Bad("threshold-zero", {"spec.rollback.errorRateThreshold": 0}, "spec.rollback.errorRateThreshold"),
    Bad("threshold-above-one", {"spec.rollback.errorRateThreshold": 1.5},
        "spec.rollback.errorRateThreshold"),
    Bad("window-not-a-duration", {"spec.rollback.window": "2 minutes"}, "spec.rollback.window"),
    Bad("bake-window-not-a-duration", {"spec.rollback.bakeWindow": "forever"}, "spec.rollback.bakeWindow"),
    Bad("interval-longer-than-window", {"spec.rollback.interval": "5m", "spec.rollback.window": "2m"},
        "spec.rollback.interval", "must not be longer than spec.rollback.window"),
    Bad("interval-below-a-second", {"spec.rollback.interval": "500ms"}, "spec.rollback.interval",
        "at least 1s"),
    Bad("breaches-zero", {"spec.rollback.consecutiveBreaches": 0}, "spec.rollback.consecutiveBreaches"),
    Bad("min-requests-zero", {"spec.rollback.minRequests": 0}, "spec.rollback.minRequests"),
    Bad("min-accuracy-above-one", {"spec.rollback.minAccuracy": 1.2}, "spec.rollback.minAccuracy"),
    Bad("max-rmse-negative", {"spec.rollback.maxRmse": -1}, "spec.rollback.maxRmse"),
    Bad("keep-previous-too-many", {"spec.rollback.keepPrevious": 11}, "spec.rollback.keepPrevious"),
    Bad("progress-deadline-too-short", {"spec.rollback.progressDeadlineSeconds": 5},
        "spec.rollback.progressDeadlineSeconds"),
    Bad("enabled-not-boolean", {"spec.rollback.enabled": "yes"}, "spec.rollback.enabled"),
    Bad("typo-field", {"spec.replica": 2}, 'unknown field "spec.replica"'),
    Bad("name-starts-with-digit", {"metadata.name": "9-lives"}, "metadata.name"),
    Bad("name-too-long", {"metadata.name": "m" * 53}, "metadata.name"),
    # ModelPipeline
    Bad("steps-missing", {"spec.steps": DELETE}, "spec.steps: Required value", base=GOOD_PIPELINE),
    Bad("steps-empty", {"spec.steps": []}, "spec.steps", "at least 1", base=GOOD_PIPELINE),
    Bad("steps-too-many", {"spec.steps": [step(f"s{i}") for i in range(21)]}, "spec.steps",
        base=GOOD_PIPELINE),
    Bad("step-names-repeat", {"spec.steps": [step("price"), step("risk"), step("price")]}, "spec.steps",
        'step name "price" is used more than once', base=GOOD_PIPELINE),
    Bad("first-step-features-and-previous", {"spec.steps.0.input": "features+previous"},
        "spec.steps[0].input", "first step has no previous step", base=GOOD_PIPELINE),
    Bad("step-name-uppercase", {"spec.steps.1.name": "Diagnosis"}, "spec.steps[1].name", base=GOOD_PIPELINE),
    Bad("step-model-invalid", {"spec.steps.0.model": "House_Price"}, "spec.steps[0].model",
        base=GOOD_PIPELINE),
    Bad("step-model-missing", {"spec.steps.0.model": DELETE}, "spec.steps[0].model: Required value",
        base=GOOD_PIPELINE),
    Bad("step-input-unknown", {"spec.steps.1.input": "both"}, "spec.steps[1].input: Unsupported value",
        base=GOOD_PIPELINE),
    Bad("timeout-zero", {"spec.timeoutSeconds": 0}, "spec.timeoutSeconds", base=GOOD_PIPELINE),
    Bad("timeout-too-long", {"spec.timeoutSeconds": 301}, "spec.timeoutSeconds", base=GOOD_PIPELINE),
    Bad("router-replicas-zero", {"spec.replicas": 0}, "spec.replicas", base=GOOD_PIPELINE),
    Bad("pipeline-name-invalid", {"metadata.name": "Pipeline"}, "metadata.name", base=GOOD_PIPELINE),
    # s3:// and models:/ (the artifacts issue)
    Bad("s3-without-sha256", {"spec.artifact.uri": "s3://models/iris.joblib", "spec.artifact.sha256": DELETE},
        "spec.artifact.sha256", "sha256sum"),
    Bad("s3-without-key", {"spec.artifact.uri": "s3://models"}, "spec.artifact.uri", "s3://<bucket>/<key>"),
    Bad("s3-options-on-https", {"spec.artifact.s3": {"region": "eu-west-1"}}, "spec.artifact.s3",
        "only to an s3://"),
    Bad("s3-bad-endpoint", {"spec.artifact.uri": "s3://models/iris.joblib",
                            "spec.artifact.s3": {"endpoint": "minio:9000"}},
        "spec.artifact.s3.endpoint", "http(s)://host[:port]"),
    Bad("s3-two-ca-bundles", {"spec.artifact.uri": "s3://models/iris.joblib",
                              "spec.artifact.s3": {"caBundleConfigMap": {"name": "a"},
                                                   "caBundleSecret": {"name": "b"}}},
        "spec.artifact.s3.caBundleSecret", "not both"),
    Bad("s3-secret-without-name", {"spec.artifact.uri": "s3://models/iris.joblib",
                                   "spec.artifact.s3": {"credentialsSecret": {"sessionTokenKey": "t"}}},
        "spec.artifact.s3.credentialsSecret.name"),
    Bad("models-latest", {"spec.artifact.uri": "models:/iris/latest", "spec.artifact.sha256": DELETE},
        "spec.artifact.uri", "models:/<name>@<alias>"),
    Bad("mlflow-options-on-https", {"spec.artifact.mlflow": {"trackingUri": "http://m:5000"}},
        "spec.artifact.mlflow", "only to a models:/"),
    Bad("mlflow-alias-rollout", {"spec.artifact.uri": "models:/iris@champion",
                                 "spec.artifact.mlflow": {"aliasRollout": "Always"}},
        "spec.artifact.mlflow.aliasRollout"),
    # spec.rollout.shadow (the progressive-delivery issue)
    Bad("shadow-percent-zero", {"spec.rollout.shadow.percent": 0}, "spec.rollout.shadow.percent"),
    Bad("shadow-percent-over", {"spec.rollout.shadow.percent": 101}, "spec.rollout.shadow.percent"),
    Bad("shadow-disagreement-over", {"spec.rollout.shadow.maxDisagreement": 1.5},
        "spec.rollout.shadow.maxDisagreement"),
    Bad("shadow-min-rows-zero", {"spec.rollout.shadow.minRows": 0}, "spec.rollout.shadow.minRows"),
    Bad("shadow-duration-short", {"spec.rollout.shadow.maxDuration": "500ms"},
        "spec.rollout.shadow.maxDuration", "at least 1s"),
    Bad("shadow-duration-garbled", {"spec.rollout.shadow.maxDuration": "soon"},
        "spec.rollout.shadow.maxDuration"),
    Bad("shadow-unknown-field", {"spec.rollout.shadow.maxLatency": "1s"},
        "spec.rollout.shadow.maxLatency"),
    Bad("canary-steps-decrease", {"spec.rollout.canary.steps": [50, 10]},
        "spec.rollout.canary.steps", "must increase"),
    Bad("canary-steps-repeat", {"spec.rollout.canary.steps": [10, 10]},
        "spec.rollout.canary.steps", "must increase"),
    Bad("canary-step-100", {"spec.rollout.canary.steps": [10, 100]},
        "spec.rollout.canary.steps[1]"),
    Bad("canary-step-zero", {"spec.rollout.canary.steps": [0]}, "spec.rollout.canary.steps[0]"),
    Bad("canary-steps-empty", {"spec.rollout.canary.steps": []}, "spec.rollout.canary.steps"),
    Bad("canary-duration-short", {"spec.rollout.canary.stepDuration": "100ms"},
        "spec.rollout.canary.stepDuration", "at least 1s"),
    Bad("canary-error-rate-over", {"spec.rollout.canary.maxErrorRate": 2},
        "spec.rollout.canary.maxErrorRate"),
    Bad("canary-min-requests-zero", {"spec.rollout.canary.minRequests": 0},
        "spec.rollout.canary.minRequests"),
    Bad("canary-hash-header-space", {"spec.rollout.canary.hashHeader": "X User"},
        "spec.rollout.canary.hashHeader"),
    Bad("canary-unknown-field", {"spec.rollout.canary.weights": [10]},
        "spec.rollout.canary.weights"),
]


@pytest.fixture(scope="module")
def scratch_namespace(control_plane, crds) -> Iterator[str]:
    """One namespace for the whole table: a refused manifest creates nothing."""
    name = f"t-{uuid.uuid4().hex[:8]}"
    control_plane.kubectl("create", "namespace", name)
    yield name
    control_plane.kubectl("delete", "namespace", name, "--wait=false", check=False)


def apply(control_plane, manifest: dict, namespace: str, check: bool = True):
    return control_plane.kubectl("apply", "-n", namespace, "-f", "-", input=json.dumps(manifest),
                                 check=check)


def read(control_plane, kind: str, name: str, namespace: str) -> dict:
    out = control_plane.kubectl("get", f"{kind.lower()}.{contract.API_GROUP}", name, "-n", namespace,
                                "-o", "json").stdout
    return json.loads(out)


@pytest.mark.parametrize("bad", BAD, ids=[row.id for row in BAD])
def test_bad_manifest_is_refused_naming_the_field(control_plane, scratch_namespace, bad):
    manifest = changed(bad.base, bad.changes)
    result = apply(control_plane, manifest, scratch_namespace, check=False)
    assert result.returncode != 0, f"accepted: {result.stdout}"
    assert bad.field in result.stderr
    assert bad.hint in result.stderr


def test_the_table_is_broad():
    assert len(BAD) >= 15 and len({row.id for row in BAD}) == len(BAD)


def test_every_error_of_a_manifest_is_reported_at_once(control_plane, scratch_namespace):
    manifest = changed(GOOD_MODEL, {"spec.replicas": 101, "spec.method": "fit",
                                    "spec.rollback.window": "soon"})
    stderr = apply(control_plane, manifest, scratch_namespace, check=False).stderr
    assert all(f in stderr for f in ("spec.replicas", "spec.method", "spec.rollback.window"))


MODEL_SPEC_DEFAULTS = {
    "method": "predict", "replicas": 1, "suspend": False,
    "serving": {"workers": 1, "threads": 4, "batch": {"maxSize": 1, "maxWaitMs": 5}},
    "rollback": {"enabled": True, "dryRun": False, "errorRateThreshold": 0.05, "window": "2m",
                 "interval": "15s", "consecutiveBreaches": 3, "minRequests": 50,
                 "bakeWindow": "30m", "keepPrevious": 1, "progressDeadlineSeconds": 600,
                 "minJudgedWindows": 3, "onBakeTimeout": "Hold", "minScoredRows": 100},
}


def test_minimal_model_is_stored_with_every_default(control_plane, crds, namespace):
    apply(control_plane, GOOD_MODEL, namespace)
    stored = read(control_plane, contract.MODEL_KIND, "house-price", namespace)
    assert stored["spec"] == {**GOOD_MODEL["spec"], **MODEL_SPEC_DEFAULTS}


def test_partial_rollback_keeps_the_other_defaults(control_plane, crds, namespace):
    apply(control_plane, changed(GOOD_MODEL, {"spec.rollback": {"window": "10m"}}), namespace)
    rollback = read(control_plane, contract.MODEL_KIND, "house-price", namespace)["spec"]["rollback"]
    assert rollback == {**MODEL_SPEC_DEFAULTS["rollback"], "window": "10m"}


SHADOW_DEFAULTS = {"percent": 100, "minRows": 200, "maxDisagreement": 0.05,
                   "maxErrorRate": 0.01, "tolerance": 0.01, "maxDuration": "30m"}


def test_an_empty_shadow_policy_is_stored_with_every_default(control_plane, crds, namespace):
    apply(control_plane, changed(GOOD_MODEL, {"spec.rollout": {"shadow": {}}}), namespace)
    stored = read(control_plane, contract.MODEL_KIND, "house-price", namespace)["spec"]
    assert stored["rollout"] == {"shadow": SHADOW_DEFAULTS}


def test_every_field_round_trips(control_plane, crds, namespace):
    spec = {
        "version": "2024.06.1_rc-2",
        "artifact": {"uri": "pvc://models/house-price/2/model.skops", "sha256": SHA, "format": "skops"},
        "method": "predict_proba", "replicas": 0, "image": "registry.local/serving:1.2",
        "resources": {"requests": {"cpu": "250m", "memory": "256Mi"}, "limits": {"cpu": 2, "memory": "1Gi"}},
        "serving": {"workers": 2, "threads": 8, "batch": {"maxSize": 64, "maxWaitMs": 0}},
        "rollback": {"enabled": False, "dryRun": True, "errorRateThreshold": 1, "window": "1h30m",
                     "interval": "1m", "consecutiveBreaches": 5, "minRequests": 1000,
                     "bakeWindow": "2h", "minAccuracy": 0.9, "maxRmse": 12.5, "keepPrevious": 3,
                     "progressDeadlineSeconds": 120, "minJudgedWindows": 1, "onBakeTimeout": "Promote",
                     "minScoredRows": 10},
        "rollout": {"shadow": {"percent": 12.5, "minRows": 500, "maxDisagreement": 0.02,
                               "maxErrorRate": 0, "tolerance": 0.001, "maxDuration": "1h"}},
        "suspend": True,
    }
    apply(control_plane, {**GOOD_MODEL, "spec": spec}, namespace)
    assert read(control_plane, contract.MODEL_KIND, "house-price", namespace)["spec"] == spec


@pytest.mark.parametrize("uri", [
    "file:///models/iris.joblib", "http://models.local:8000/iris.joblib",
    "https://models.example/iris/1/model.joblib?token=x", "pvc://model-store/iris/1/model.joblib",
    "configMap://sample-artifacts/iris.joblib", "s3://models/iris/1/model.joblib",
    "models:/iris/3", "models:/iris@champion",
])
def test_every_artifact_scheme_is_accepted(control_plane, scratch_namespace, uri):
    manifest = changed(GOOD_MODEL, {"spec.artifact.uri": uri, "metadata.name": "scheme-check"})
    result = control_plane.kubectl("apply", "--dry-run=server", "-n", scratch_namespace, "-f", "-",
                                   input=json.dumps(manifest))
    assert "created (server dry run)" in result.stdout


def test_minimal_pipeline_is_stored_with_every_default(control_plane, crds, namespace):
    manifest = changed(GOOD_PIPELINE, {"spec.steps.1.input": DELETE})
    apply(control_plane, manifest, namespace)
    stored = read(control_plane, contract.PIPELINE_KIND, "house-price-diagnosis", namespace)
    assert stored["spec"] == {"steps": [{"name": "price", "model": "house-price", "input": "previous"},
                                        {"name": "diagnosis", "model": "diagnosis", "input": "previous"}],
                              "timeoutSeconds": 5, "replicas": 1, "suspend": False}


def columns(table: str) -> list[dict[str, str]]:
    """Rows of a kubectl table as {HEADER: cell}, cut at the header's column starts (cells may be empty)."""
    header, *rows = table.rstrip().splitlines()
    starts = [match.start() for match in re.finditer(r"\S+( \S+)*", header)]
    bounds = list(zip(starts, starts[1:] + [None]))
    names = [header[a:b].strip() for a, b in bounds]
    return [{name: row[a:b].strip() for name, (a, b) in zip(names, bounds)} for row in rows]


READY_STATUS = {
    "observedGeneration": 1, "desiredVersion": "3", "servingVersion": "3", "lastGoodVersion": "3",
    "url": "http://house-price.demo.svc.cluster.local/v2/models/house-price/infer",
    "analysis": {"lastEvaluated": "2025-01-01T00:00:00Z", "errorRate": 0.012, "requests": 1834,
                 "consecutiveBreaches": 0, "result": "Passed", "message": "error rate below threshold"},
    "history": [{"version": "3", "sha256": SHA, "startedAt": "2025-01-01T00:00:00Z",
                 "outcome": "Serving", "reason": "RolledOut"}],
    "conditions": [{"type": "Ready", "status": "True", "reason": "Serving", "message": "serving 3",
                    "lastTransitionTime": "2025-01-01T00:00:00Z", "observedGeneration": 1}],
    "kopf": {"progress": {}},  # kopf's own keys must survive (preserve-unknown-fields)
}


def test_status_subresource_printer_columns_and_wait(control_plane, crds, namespace):
    apply(control_plane, {**GOOD_MODEL, "status": {"servingVersion": "ignored"}}, namespace)
    assert "status" not in read(control_plane, contract.MODEL_KIND, "house-price", namespace)
    control_plane.kubectl("patch", "model", "house-price", "-n", namespace, "--subresource=status",
                          "--type=merge", "-p", json.dumps({"status": READY_STATUS}))
    stored = read(control_plane, contract.MODEL_KIND, "house-price", namespace)
    assert stored["status"] == READY_STATUS
    (row,) = columns(control_plane.kubectl("get", "mdl", "-n", namespace, "-o", "wide").stdout)
    assert list(row) == ["NAME", "READY", "SERVING", "DESIRED", "CANARY", "ERROR RATE", "REASON",
                         "AGE", "URL", "MESSAGE"]
    assert [row[k] for k in ("READY", "SERVING", "DESIRED", "CANARY", "ERROR RATE", "REASON",
                             "URL", "MESSAGE")] == [
        "True", "3", "3", "", "0.012", "Serving", READY_STATUS["url"], "serving 3"]
    in_canary = {"revisions": [{"revision": "r3", "version": "3", "phase": "Promoted"},
                               {"revision": "r4", "version": "4", "phase": "Canary",
                                "canary": {"step": 1, "steps": 2, "weight": 10}}]}
    control_plane.kubectl("patch", "model", "house-price", "-n", namespace, "--subresource=status",
                          "--type=merge", "-p", json.dumps({"status": in_canary}))
    (row,) = columns(control_plane.kubectl("get", "mdl", "-n", namespace).stdout)
    assert row["CANARY"] == "10"
    control_plane.kubectl("wait", "--for=condition=Ready", "model/house-price", "-n", namespace,
                          "--timeout=20s")


def test_status_is_validated_too(control_plane, crds, namespace):
    apply(control_plane, GOOD_MODEL, namespace)
    bad = {"status": {"conditions": [{"type": "Ready", "status": "Yes"}]}}
    result = control_plane.kubectl("patch", "model", "house-price", "-n", namespace,
                                   "--subresource=status", "--type=merge", "-p", json.dumps(bad),
                                   check=False)
    assert result.returncode != 0 and "status.conditions[0].status" in result.stderr


def test_pipeline_columns_short_names_and_category(control_plane, crds, namespace):
    apply(control_plane, GOOD_MODEL, namespace)
    apply(control_plane, GOOD_PIPELINE, namespace)
    (row,) = columns(control_plane.kubectl("get", "mpl", "-n", namespace).stdout)
    assert list(row) == ["NAME", "READY", "REASON", "AGE"]  # the long URL is in -o wide
    assert row["NAME"] == "house-price-diagnosis" and row["READY"] == ""
    (wide,) = columns(control_plane.kubectl("get", "mpl", "-n", namespace, "-o", "wide").stdout)
    assert list(wide) == ["NAME", "READY", "URL", "REASON", "AGE", "MESSAGE"]
    listed = control_plane.kubectl("get", "modelops", "-n", namespace, "-o", "name").stdout.split()
    assert sorted(listed) == [f"model.{contract.API_GROUP}/house-price",
                              f"modelpipeline.{contract.API_GROUP}/house-price-diagnosis"]
