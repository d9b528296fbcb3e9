"""Pod wiring of s3:// and models:/ artifacts, and the alias decision table (pure)."""

from __future__ import annotations

import json

import pytest

from modelops import contract as c
from modelops.operator import mlflow_alias
from modelops.operator.builders import build_deployment
from modelops.operator.spec import SpecError, parse_model, revision_of
from tests.factories import SHA_A, model_spec


def _pod(artifact: dict) -> dict:
    spec = parse_model(model_spec(artifact=artifact))
    return build_deployment("iris", spec, image="serving:test")["spec"]["template"]["spec"]


def _env(container: dict) -> dict:
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in container["env"]}


S3 = {"uri": "s3://models/iris/model.joblib", "sha256": SHA_A,
      "s3": {"endpoint": "https://minio.store:9000", "region": "eu-west-1", "addressingStyle": "Path",
             "credentialsSecret": {"name": "store-keys", "sessionTokenKey": "token"},
             "caBundleConfigMap": {"name": "store-ca"}}}


def test_s3_keys_reach_only_the_init_container_by_secret_reference():
    pod = _pod(S3)
    fetch, server = pod["initContainers"][0], pod["containers"][0]
    env = _env(fetch)
    assert env[c.ENV_AWS_ACCESS_KEY_ID] == {"secretKeyRef": {"name": "store-keys", "key": "AWS_ACCESS_KEY_ID"}}
    assert env[c.ENV_AWS_SECRET_ACCESS_KEY] == {"secretKeyRef": {"name": "store-keys",
                                                                 "key": "AWS_SECRET_ACCESS_KEY"}}
    assert env[c.ENV_AWS_SESSION_TOKEN] == {"secretKeyRef": {"name": "store-keys", "key": "token"}}
    assert not any(name.startswith("AWS_") for name in _env(server))
    assert env[c.ENV_S3_ENDPOINT] == "https://minio.store:9000" and env[c.ENV_S3_ADDRESSING] == "path"
    assert env[c.ENV_S3_REGION] == "eu-west-1"
    assert env[c.ENV_S3_CA_BUNDLE] == f"{c.CA_BUNDLE_MOUNT}/ca.crt"
    assert {"name": "artifact-ca", "configMap": {"name": "store-ca"}} in pod["volumes"]
    assert any(m["mountPath"] == c.CA_BUNDLE_MOUNT for m in fetch["volumeMounts"])
    assert fetch["command"] == list(c.FETCH_COMMAND) and "store-keys" not in json.dumps(fetch["command"])


def test_s3_without_a_secret_uses_the_pods_identity():
    pod = _pod({"uri": "s3://models/iris/model.joblib", "sha256": SHA_A})
    assert not any(name.startswith("AWS_") for name in _env(pod["initContainers"][0]))
    assert pod["initContainers"][0]["name"] == "fetch"


def test_s3_needs_a_pin():
    with pytest.raises(SpecError, match="sha256"):
        parse_model(model_spec(artifact={"uri": "s3://models/iris/model.joblib"}))


def test_mlflow_token_and_tracking_uri():
    pod = _pod({"uri": "models:/iris@champion", "sha256": SHA_A,
                "mlflow": {"trackingUri": "http://mlflow.ml:5000", "tokenSecret": {"name": "mlflow"}}})
    env = _env(pod["initContainers"][0])
    assert env[c.ENV_MLFLOW_TRACKING_URI] == "http://mlflow.ml:5000"
    assert env[c.ENV_MLFLOW_TOKEN] == {"secretKeyRef": {"name": "mlflow", "key": "token"}}
    assert c.ENV_MLFLOW_TOKEN not in _env(pod["containers"][0])
    assert parse_model(model_spec(artifact={"uri": "models:/iris/2", "sha256": SHA_A})).artifact.mlflow is None


# --- alias decisions ------------------------------------------------------------------------------

URI = "models:/iris@champion"


@pytest.mark.parametrize("recorded, current, policy, serve, event, condition", [
    (None, "3", "Manual", "3", ("Normal", "MlflowAliasResolved"), "False"),
    ({"alias": "iris@champion", "version": "3", "aliasVersion": "3"}, "3", "Manual", "3", None, None),
    ({"alias": "iris@champion", "version": "3", "aliasVersion": "3"}, "4", "Manual", "3",
     ("Warning", "MlflowAliasMoved"), "True"),
    ({"alias": "iris@champion", "version": "3", "aliasVersion": "4"}, "4", "Manual", "3", None, None),
    ({"alias": "iris@champion", "version": "3", "aliasVersion": "4"}, "3", "Manual", "3", None, "False"),
    ({"alias": "iris@champion", "version": "3", "aliasVersion": "3"}, "4", "Auto", "4",
     ("Normal", "MlflowAliasMoved"), "False"),
    ({"alias": "iris@other", "version": "1", "aliasVersion": "1"}, "5", "Manual", "5",
     ("Normal", "MlflowAliasResolved"), "False"),
])
def test_alias_decisions(recorded, current, policy, serve, event, condition):
    decision = mlflow_alias.decide(URI, recorded, current, policy)
    assert decision.serve_version == serve
    assert (decision.event[:2] if decision.event else None) == event
    assert (decision.condition["status"] if decision.condition else None) == condition
    assert decision.status["aliasVersion"] == current and decision.status["version"] == serve


def test_pinned_uri_and_policy():
    assert mlflow_alias.pinned_uri(URI, "7") == "models:/iris/7"
    assert mlflow_alias.pinned_uri("models:/iris/2", "7") == "models:/iris/2"
    assert mlflow_alias.policy_of("Manual", {c.ANNOTATION_MLFLOW_ALIAS_ROLLOUT: "Auto"}) == "Auto"
    assert mlflow_alias.policy_of("", {}) == "Manual"
    assert mlflow_alias.policy_of("Auto", {c.ANNOTATION_MLFLOW_ALIAS_ROLLOUT: "yes"}) == "Manual"


def test_pinned_spec_is_a_new_revision_per_registry_version():
    spec = parse_model(model_spec(artifact={"uri": URI, "sha256": SHA_A}, version="champion"))
    v7, v8 = mlflow_alias.pinned_spec(spec, "7"), mlflow_alias.pinned_spec(spec, "8")
    assert v7.artifact.uri == "models:/iris/7" and v7.version == "champion"
    assert len({spec.revision, v7.revision, v8.revision}) == 3
    pod = build_deployment("iris", v8, image="serving:test")["spec"]["template"]["spec"]
    assert _env(pod["initContainers"][0])[c.ENV_ARTIFACT_URI] == "models:/iris/8"
    https = parse_model(model_spec())
    moved = parse_model(model_spec(artifact={**model_spec()["artifact"], "uri": "https://elsewhere/m.joblib"}))
    assert https.revision == moved.revision  # other schemes: the sha256 pins it, not the URI
