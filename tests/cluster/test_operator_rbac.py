"""The operator running as its own ServiceAccount with exactly deploy/rbac.yaml's ClusterRole,
on an API server that enforces owner references (OwnerReferencesPermissionEnforcement, as
OpenShift does): children are created by server-side apply with blockOwnerDeletion (needs
`update` on models/finalizers), the status is written, and out-of-service pods get their role
label (pods `patch`). With the old role (no */finalizers) every child create was refused."""

from __future__ import annotations

from pathlib import Path

import yaml

from modelops import contract
from tests.cluster.support import Cluster, OperatorProcess, wait_for
from tests.cluster.test_model_operator import _model, _revision, _serve
from tests.factories import SHA_B

REPO = Path(__file__).resolve().parents[2]
OPERATOR = "modelops-operator"


def token_kubeconfig(admin: Path, token: str, path: Path) -> Path:
    config = yaml.safe_load(admin.read_text())
    for user in config["users"]:
        user["user"] = {"token": token}
    path.write_text(yaml.safe_dump(config))
    path.chmod(0o600)
    return path


def test_the_declared_rbac_is_enough_under_owner_reference_enforcement(control_plane, crds,
                                                                       namespace, tmp_path):
    existed = control_plane.kubectl("get", "namespace", contract.OPERATOR_NAMESPACE, check=False)
    control_plane.kubectl("apply", "-f", str(REPO / "deploy" / "namespace.yaml"),
                          "-f", str(REPO / "deploy" / "rbac.yaml"))
    token = control_plane.kubectl("create", "token", OPERATOR, "-n", contract.OPERATOR_NAMESPACE,
                                  "--duration=1h").stdout.strip()
    kubeconfig = token_kubeconfig(control_plane.kubeconfig, token, tmp_path / "kubeconfig")
    operator = OperatorProcess(kubeconfig, tmp_path / "operator.log").start()
    cluster = Cluster(control_plane.api_client())
    try:
        cluster.create(namespace, _model("iris"))
        v1, v2 = _revision(), _revision(version="2", sha256=SHA_B)
        _serve(cluster, namespace, "iris", v1)
        wait_for(lambda: cluster.condition(namespace, "iris") == ("True", "Serving"),
                 what="Serving as the ServiceAccount")
        cluster.patch_spec(namespace, "iris", {"version": "2", "artifact": {"sha256": SHA_B}})
        _serve(cluster, namespace, "iris", v2)
        wait_for(lambda: cluster.service_revision(namespace, "iris") == v2, what="v2 serving")

        def old_pods_standby():
            pods = cluster.core.list_namespaced_pod(
                namespace, label_selector=f"{contract.LABEL_MODEL}=iris,"
                                          f"{contract.LABEL_REVISION}={v1}").items
            return pods and all((p.metadata.labels or {}).get(contract.LABEL_ROLE)
                                == contract.ROLE_STANDBY for p in pods)
        wait_for(old_pods_standby, what="v1's pods labelled standby")
        new_pods = cluster.core.list_namespaced_pod(
            namespace, label_selector=f"{contract.LABEL_MODEL}=iris,"
                                      f"{contract.LABEL_REVISION}={v2}").items
        # v2's pods were standby while v1 served, and are serving again now
        wait_for(lambda: all((p.metadata.labels or {}).get(contract.LABEL_ROLE) != contract.ROLE_STANDBY
                             for p in cluster.core.list_namespaced_pod(
                                 namespace, label_selector=f"{contract.LABEL_MODEL}=iris,"
                                 f"{contract.LABEL_REVISION}={v2}").items), what="v2 not standby")
        assert new_pods
        events = cluster.core.list_namespaced_event(
            namespace, field_selector="involvedObject.name=iris,involvedObject.kind=Model").items
        assert events and {e.reporting_component for e in events} == {contract.REPORTING_COMPONENT}
        # the operator watches every namespace; other tests' namespaces being deleted refuse
        # creates as "forbidden ... being terminated", which is not an RBAC gap
        refused = [line for line in operator.log().lower().splitlines()
                   if "forbidden" in line and "being terminated" not in line]
        assert not refused, refused
    finally:
        operator.stop()
        if existed.returncode != 0:
            control_plane.kubectl("delete", "namespace", contract.OPERATOR_NAMESPACE,
                                  "--wait=false", check=False)
            control_plane.kubectl("delete", f"clusterrole/{OPERATOR}",
                                  f"clusterrolebinding/{OPERATOR}", "--ignore-not-found",
                                  check=False)
