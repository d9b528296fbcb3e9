"""build_deployment / build_service / router builders: exact fields, env from the contract."""

import json

import pytest

from modelops import contract as c
from modelops.operator.builders import (build_deployment, build_router_deployment,
                                        build_router_service, build_service, deployment_name)
from modelops.operator.spec import parse_model, parse_pipeline
from tests.factories import SHA_A, model_spec

IMAGE = "modelops/serving:test"


def _deployment(**overrides):
    spec = parse_model(model_spec(**overrides))
    return spec, build_deployment("iris", spec, image=IMAGE)


def _env(container):
    return {e["name"]: e["value"] for e in container["env"] if "value" in e}


class TestBuildDeployment:
    def test_name_selector_and_labels_identify_the_revision(self):
        spec, d = _deployment()
        assert d["metadata"]["name"] == deployment_name("iris", spec.revision)
        selector = d["spec"]["selector"]["matchLabels"]
        labels = d["spec"]["template"]["metadata"]["labels"]
        assert selector == {c.LABEL_MODEL: "iris", c.LABEL_REVISION: spec.revision}
        assert selector.items() <= labels.items()
        assert labels[c.LABEL_VERSION] == "1" and labels[c.LABEL_MANAGED_BY] == "modelops"

    def test_env_names_are_the_contract(self):
        spec, d = _deployment()
        env = _env(d["spec"]["template"]["spec"]["containers"][0])
        assert env[c.ENV_MODEL_NAME] == "iris"
        assert env[c.ENV_MODEL_VERSION] == "1"
        assert env[c.ENV_ARTIFACT_SHA256] == SHA_A
        assert env[c.ENV_ARTIFACT_URI] == "configMap://iris-1/model.joblib"
        assert env[c.ENV_ARTIFACT_DIR] == c.ARTIFACT_MOUNT
        assert all(name.startswith(c.ENV_PREFIX) for name in env)

    def test_skops_trusted_types_and_version_policy_reach_the_pod(self):
        artifact = {"uri": "configMap://iris-1/model.skops", "sha256": SHA_A, "format": "skops",
                    "trustedTypes": ["mypkg.Clipper", "mypkg.Scaler"], "sklearnVersionPolicy": "warn"}
        _, d = _deployment(artifact=artifact)
        env = _env(d["spec"]["template"]["spec"]["containers"][0])
        assert env[c.ENV_SKOPS_TRUSTED_TYPES] == "mypkg.Clipper,mypkg.Scaler"
        assert env[c.ENV_SKLEARN_VERSION_POLICY] == "warn"
        _, plain = _deployment()
        assert c.ENV_SKOPS_TRUSTED_TYPES not in _env(plain["spec"]["template"]["spec"]["containers"][0])

    @pytest.mark.parametrize("uri", ["configMap://iris-1/model.joblib", "pvc://models/m.joblib",
                                     "file:///models/m.joblib", "https://models.example/m.joblib"])
    def test_every_scheme_needs_a_sha256(self, uri):
        with pytest.raises(ValueError, match="sha256sum model.joblib"):
            parse_model(model_spec(artifact={"uri": uri}))

    def test_pod_meets_restricted_profile(self):
        _, d = _deployment()
        pod = d["spec"]["template"]["spec"]
        container = pod["containers"][0]
        assert pod["automountServiceAccountToken"] is False
        assert pod["securityContext"]["runAsNonRoot"] is True
        assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
        sc = container["securityContext"]
        assert sc == {"allowPrivilegeEscalation": False, "readOnlyRootFilesystem": True,
                      "runAsNonRoot": True, "capabilities": {"drop": ["ALL"]}}
        assert {"name": "scratch", "mountPath": "/tmp"} in container["volumeMounts"]

    def test_probes_and_scrape_annotations(self):
        _, d = _deployment()
        container = d["spec"]["template"]["spec"]["containers"][0]
        assert container["startupProbe"]["httpGet"]["path"] == c.PATH_READY
        assert container["readinessProbe"]["httpGet"]["path"] == c.PATH_READY
        assert container["livenessProbe"]["httpGet"]["path"] == c.PATH_LIVE
        annotations = d["spec"]["template"]["metadata"]["annotations"]
        assert annotations["prometheus.io/port"] == str(c.DEFAULT_PORT)

    @pytest.mark.parametrize("uri, volume", [
        ("configMap://iris-cm/model.joblib", {"name": "artifact", "configMap": {"name": "iris-cm"}}),
        ("pvc://models/iris/model.joblib", {"name": "artifact", "persistentVolumeClaim":
                                            {"claimName": "models", "readOnly": True}}),
    ])
    def test_volume_per_scheme(self, uri, volume):
        _, d = _deployment(artifact={"uri": uri, "sha256": SHA_A})
        assert volume in d["spec"]["template"]["spec"]["volumes"]
        assert "initContainers" not in d["spec"]["template"]["spec"]

    def test_http_artifact_is_fetched_by_an_init_container(self):
        _, d = _deployment(artifact={"uri": "https://models.example/iris.joblib", "sha256": SHA_A})
        pod = d["spec"]["template"]["spec"]
        (fetch,) = pod["initContainers"]
        assert fetch["command"] == list(c.FETCH_COMMAND)
        assert {"name": "artifact", "emptyDir": {}} in pod["volumes"]
        assert _env(fetch)[c.ENV_ARTIFACT_URI] == "https://models.example/iris.joblib"
        assert "readinessProbe" not in fetch

    def test_file_artifact_needs_no_volume(self):
        _, d = _deployment(artifact={"uri": "file:///models/iris.joblib", "sha256": SHA_A})
        pod = d["spec"]["template"]["spec"]
        assert [v["name"] for v in pod["volumes"]] == ["scratch", "podinfo"]
        assert c.ENV_ARTIFACT_DIR not in _env(pod["containers"][0])

    def test_the_server_sees_its_own_labels_and_annotations(self):
        """Labels carry its role, annotations the shadow target (no restart to switch them)."""
        _, d = _deployment()
        pod = d["spec"]["template"]["spec"]
        (podinfo,) = [v for v in pod["volumes"] if v["name"] == "podinfo"]
        assert podinfo["downwardAPI"]["items"] == [
            {"path": "labels", "fieldRef": {"fieldPath": "metadata.labels"}},
            {"path": "annotations", "fieldRef": {"fieldPath": "metadata.annotations"}}]
        server = pod["containers"][0]
        assert {"name": "podinfo", "mountPath": c.PODINFO_MOUNT, "readOnly": True} in \
            server["volumeMounts"]
        assert _env(server)[c.ENV_POD_LABELS_FILE] == f"{c.PODINFO_MOUNT}/labels"
        assert _env(server)[c.ENV_POD_ANNOTATIONS_FILE] == f"{c.PODINFO_MOUNT}/annotations"

    def test_replicas_override_and_resources(self):
        spec = parse_model(model_spec(resources={"requests": {"cpu": "100m"}}))
        d = build_deployment("iris", spec, image=IMAGE, replicas=0)
        assert d["spec"]["replicas"] == 0
        assert d["spec"]["template"]["spec"]["containers"][0]["resources"] == {
            "requests": {"cpu": "100m"}}

    def test_new_version_is_a_new_deployment(self):
        first, _ = _deployment(version="1")
        second, _ = _deployment(version="2")
        assert first.revision != second.revision


def test_service_selects_the_serving_revision():
    service = build_service("iris", revision="abc", version="3")
    assert service["spec"]["selector"] == {c.LABEL_MODEL: "iris", c.LABEL_REVISION: "abc"}
    assert service["spec"]["ports"][0]["targetPort"] == c.PORT_NAME


def test_router_calls_step_services_in_order():
    spec = parse_pipeline({"steps": [{"name": "price", "model": "house-price"},
                                     {"name": "dx", "model": "diagnosis",
                                      "input": "features+previous"}], "timeoutSeconds": 3})
    d = build_router_deployment("p", "demo", spec, image=IMAGE)
    env = _env(d["spec"]["template"]["spec"]["containers"][0])
    assert env[c.ENV_MODE] == "pipeline"
    steps = json.loads(env[c.ENV_PIPELINE_STEPS])
    assert [s["url"] for s in steps] == ["http://house-price.demo.svc.cluster.local:80",
                                         "http://diagnosis.demo.svc.cluster.local:80"]
    assert steps[1]["input"] == "features+previous"
    assert env[c.ENV_PIPELINE_TIMEOUT] == "3.0"
    assert build_router_service("p")["spec"]["selector"] == {c.LABEL_PIPELINE: "p"}


def test_feedback_key_secret_and_env():
    from modelops.operator.builders import build_feedback_secret

    _, deployment = _deployment()
    pod = deployment["spec"]["template"]["spec"]
    server = pod["containers"][0]
    ref = next(e for e in server["env"] if e["name"] == "MODELOPS_FEEDBACK_KEY")
    assert ref["valueFrom"]["secretKeyRef"] == {"name": "iris-feedback", "key": "key"}
    assert pod["volumes"][0]["emptyDir"] == {"sizeLimit": "512Mi"}
    secret = build_feedback_secret("iris", "x" * 43)
    assert secret["metadata"]["name"] == "iris-feedback" and secret["stringData"] == {"key": "x" * 43}
