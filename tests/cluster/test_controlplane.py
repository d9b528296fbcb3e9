"""The control plane is real: version, server-side CRD validation, controllers, GC, restart."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from typing import TypeVar

import kubernetes
import pytest
import yaml

from modelops.devcluster.access import ClusterAccess
from modelops.devcluster.binaries import pinned_k8s_version

T = TypeVar("T")
GROUP = "harness.test.modelops.io"
CRD_NAME = f"gadgets.{GROUP}"
GADGET_CRD = {
    "apiVersion": "apiextensions.k8s.io/v1",
    "kind": "CustomResourceDefinition",
    "metadata": {"name": CRD_NAME},
    "spec": {
        "group": GROUP,
        "scope": "Namespaced",
        "names": {"plural": "gadgets", "singular": "gadget", "kind": "Gadget"},
        "versions": [
            {
                "name": "v1",
                "served": True,
                "storage": True,
                "schema": {
                    "openAPIV3Schema": {
                        "type": "object",
                        "properties": {
                            "spec": {
                                "type": "object",
                                "required": ["size"],
                                "properties": {
                                    "size": {"type": "integer", "minimum": 1},
                                    "color": {"type": "string", "enum": ["red", "blue"]},
                                },
                            }
                        },
                    }
                },
            }
        ],
    },
}


def gadget(name: str, namespace: str, **spec: object) -> str:
    metadata = {"name": name, "namespace": namespace}
    body = {"apiVersion": f"{GROUP}/v1", "kind": "Gadget", "metadata": metadata, "spec": spec}
    return yaml.safe_dump(body)


def eventually(read: Callable[[], T], done: Callable[[T], bool], what: str, timeout=60.0) -> T:
    """Poll `read` until `done(value)`; fail naming `what` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = read()
        if done(value):
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout:.0f} s waiting for {what}; last: {value!r}")
        time.sleep(0.5)


@pytest.fixture(scope="module")
def gadget_crd(control_plane: ClusterAccess) -> Iterator[str]:
    control_plane.kubectl("apply", "-f", "-", input=json.dumps(GADGET_CRD))
    control_plane.kubectl("wait", "--for=condition=Established", "--timeout=60s", f"crd/{CRD_NAME}")
    yield CRD_NAME
    control_plane.kubectl("delete", f"crd/{CRD_NAME}", "--wait=false", check=False)


@pytest.fixture
def apps_api(control_plane: ClusterAccess) -> Iterator[kubernetes.client.AppsV1Api]:
    with control_plane.api_client() as api:
        yield kubernetes.client.AppsV1Api(api)


def test_kubectl_version_shows_the_pinned_server(control_plane: ClusterAccess) -> None:
    versions = json.loads(control_plane.kubectl("version", "-o", "json").stdout)
    server = versions["serverVersion"]["gitVersion"]
    if control_plane.control_plane is None:  # the user's own cluster: any real version
        assert server.startswith("v1.")
    else:
        assert server == pinned_k8s_version()


def test_valid_custom_object_is_stored(
    control_plane: ClusterAccess, gadget_crd: str, namespace: str
) -> None:
    control_plane.kubectl("apply", "-f", "-", input=gadget("ok", namespace, size=3, color="red"))
    stored = control_plane.kubectl("get", "gadget", "ok", "-n", namespace, "-o", "json").stdout
    assert json.loads(stored)["spec"] == {"size": 3, "color": "red"}


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({"size": "big"}, 'spec.size: Invalid value: "string": spec.size in body must be of type'),
        ({"size": 0}, "spec.size: Invalid value: 0: spec.size in body should be greater than"),
        ({"size": 2, "color": "green"}, 'spec.color: Unsupported value: "green"'),
        ({"color": "red"}, "spec.size: Required value"),
        ({"size": 2, "colour": "red"}, 'unknown field "spec.colour"'),
    ],
    ids=["wrong-type", "below-minimum", "not-in-enum", "missing-required", "unknown-field"],
)
def test_invalid_custom_object_is_refused_by_the_server(
    control_plane: ClusterAccess, gadget_crd: str, namespace: str, spec: dict, message: str
) -> None:
    applied = control_plane.kubectl(
        "apply", "-f", "-", input=gadget("bad", namespace, **spec), check=False
    )
    assert applied.returncode != 0
    assert message in applied.stderr
    missing = control_plane.kubectl("get", "gadget", "bad", "-n", namespace, check=False)
    assert "NotFound" in missing.stderr


def test_deployment_gets_replicaset_and_gc_deletes_children(
    control_plane: ClusterAccess, apps_api: kubernetes.client.AppsV1Api, namespace: str
) -> None:
    labels = {"app": "web"}
    body = {
        "metadata": {"name": "web"},
        "spec": {
            "replicas": 2,
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": labels},
                "spec": {"containers": [{"name": "web", "image": "example.invalid/web:1"}]},
            },
        },
    }
    deployment = apps_api.create_namespaced_deployment(namespace, body)
    replica_sets = eventually(
        lambda: apps_api.list_namespaced_replica_set(namespace).items,
        lambda items: len(items) == 1,
        "the controller-manager to create a ReplicaSet",
    )
    owner = replica_sets[0].metadata.owner_references[0]
    assert (owner.kind, owner.uid) == ("Deployment", deployment.metadata.uid)
    assert owner.controller is True
    # Pods exist only if the ServiceAccount admission plugin found the default ServiceAccount.
    eventually(lambda: _pod_names(control_plane, namespace), lambda p: len(p) == 2, "two Pods")

    apps_api.delete_namespaced_deployment("web", namespace, propagation_policy="Background")
    eventually(
        lambda: apps_api.list_namespaced_replica_set(namespace).items,
        lambda items: not items,
        "the garbage collector to delete the ReplicaSet",
    )
    eventually(lambda: _pod_names(control_plane, namespace), lambda p: not p, "Pods to go")


def test_restarting_the_apiserver_loses_no_object(
    control_plane: ClusterAccess, gadget_crd: str, namespace: str
) -> None:
    plane = control_plane.control_plane
    if plane is None:
        pytest.skip("restarting kube-apiserver needs a control plane this harness started")
    control_plane.kubectl("create", "configmap", "kept", "-n", namespace, "--from-literal=k=v")
    control_plane.kubectl("apply", "-f", "-", input=gadget("kept", namespace, size=7))
    before = _uids(control_plane, namespace)
    old_pid = _apiserver_pid(plane)

    plane.restart_apiserver()

    assert _apiserver_pid(plane) != old_pid
    assert _uids(control_plane, namespace) == before
    data = control_plane.kubectl("get", "configmap", "kept", "-n", namespace, "-o", "json")
    assert json.loads(data.stdout)["data"] == {"k": "v"}
    control_plane.kubectl("create", "configmap", "after-restart", "-n", namespace)


def _pod_names(control_plane: ClusterAccess, namespace: str) -> list[str]:
    out = control_plane.kubectl("get", "pods", "-n", namespace, "-o", "name").stdout
    return out.split()


def _uids(control_plane: ClusterAccess, namespace: str) -> dict[str, str]:
    out = control_plane.kubectl(
        "get", "configmap/kept", "gadget/kept", "-n", namespace, "-o", "json"
    )
    return {item["kind"]: item["metadata"]["uid"] for item in json.loads(out.stdout)["items"]}


def _apiserver_pid(plane) -> int:
    return next(p.pid for p in plane.processes if p.component.name == "kube-apiserver")
