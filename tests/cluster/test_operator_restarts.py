"""Kill the operator (SIGKILL) at random points 20 times while 30 Models reconcile and roll out:
afterwards every Model has exactly the children it should, none lost, none duplicated, and its
status and history are consistent."""

from __future__ import annotations

import random
import time

from modelops import contract
from tests.cluster.support import Cluster, OperatorProcess, wait_for
from tests.cluster.test_model_operator import _model, _revision
from tests.factories import SHA_B

MODELS = 30
KILLS = 20


def test_no_child_is_lost_or_duplicated_across_operator_kills(control_plane, crds, namespace,
                                                              tmp_path):
    cluster = Cluster(control_plane.api_client())
    rng = random.Random(20261123)
    names = [f"m{i:02d}" for i in range(MODELS)]
    for name in names:
        cluster.create(namespace, _model(name))
    v1, v2 = _revision(), _revision(version="2", sha256=SHA_B)
    upgraded: set[str] = set()
    log = tmp_path / "operator.log"
    for kill in range(KILLS):
        operator = OperatorProcess(control_plane.kubeconfig, log).start()
        time.sleep(rng.uniform(0.1, 2.0))
        operator.kill()
        if kill % 4 == 1:  # users keep working while the operator is down
            for name in rng.sample(names, 5):
                cluster.patch_spec(namespace, name, {"version": "2", "artifact": {"sha256": SHA_B}})
                upgraded.add(name)
        if kill % 4 == 3:
            for name in names:
                cluster.mark_pods_ready(namespace, name, v2 if name in upgraded else v1)
    operator = OperatorProcess(control_plane.kubeconfig, log).start()
    total = 0
    try:
        for name in names:
            target = v2 if name in upgraded else v1
            wait_for(lambda: (m := cluster.model(namespace, name)).get("status", {}).get(
                "observedGeneration") == m["metadata"]["generation"] and m, what=f"{name} observed")
            wait_for(lambda: target in cluster.deployments(namespace, name), what=f"{name} target")
            # the kubelet stand-in may have run before a short-lived operator made the target's
            # pods; report them ready now, as a kubelet eventually would
            wait_for(lambda: cluster.mark_pods_ready(namespace, name, target) == 2,
                     what=f"{name} target pods")
            status = cluster.model(namespace, name)["status"]
            # v1 stays (warm, or scaled to zero as the one kept previous version) only if it
            # ever served without failing (a valid rollback target, promoted or not); a version
            # that never served is deleted once replaced
            served = {h["revision"] for h in status["history"]
                      if h.get("phase") in ("Serving", "Baking", "Promoted")}
            expected = {target} | ({v1} & served)
            wait_for(lambda: set(cluster.deployments(namespace, name)) == expected, timeout=30,
                     what=f"{name} Deployments {expected} (have "
                          f"{set(cluster.deployments(namespace, name))}, status {status})")
            history = status["history"]  # one entry per phase change of a revision
            changes = [(h["revision"], h.get("phase")) for h in history]
            # a phase may recur (a revert), but a restart never records one change twice
            repeated = [a for a, b in zip(changes, changes[1:]) if a == b]
            assert not repeated, f"{name}: duplicated history {history}"
            wait_for(lambda: cluster.service_revision(namespace, name) in expected,
                     what=f"{name} Service selecting one of {expected}")
            total += len(expected)
        services = cluster.core.list_namespaced_service(
            namespace, label_selector=contract.LABEL_MODEL).items
        assert sorted(s.metadata.name for s in services) == names
        deployments = cluster.apps.list_namespaced_deployment(namespace).items
        assert len(deployments) == total
        assert all(d.metadata.owner_references[0].name == d.metadata.labels[contract.LABEL_MODEL]
                   for d in deployments)
    finally:
        operator.stop()
    assert "Traceback" not in operator.log(), operator.log()[-4000:]


LEGACY = "0123456789"  # a revision hash as an earlier operator computed it


def _make_legacy(cluster: Cluster, ns: str, name: str, revision: str) -> None:
    """Rewrite a served Model into what an operator from before revision records left behind:
    its Deployment named by an older revision hash, the Service selecting it, and a status
    with servingRevision but no `revisions` records."""
    apps = cluster.apps
    current = apps.read_namespaced_deployment(f"{name}-{revision}", ns)
    body = apps.api_client.sanitize_for_serialization(current)
    body["metadata"] = {"name": f"{name}-{LEGACY}", "namespace": ns,
                        "labels": {**body["metadata"]["labels"], contract.LABEL_REVISION: LEGACY},
                        "ownerReferences": body["metadata"]["ownerReferences"]}
    body.pop("status", None)
    for labels in (body["spec"]["selector"]["matchLabels"], body["spec"]["template"]["metadata"]["labels"]):
        labels[contract.LABEL_REVISION] = LEGACY
    apps.create_namespaced_deployment(ns, body)
    wait_for(lambda: cluster.mark_pods_ready(ns, name, LEGACY) == 2, what="legacy pods")
    wait_for(lambda: (apps.read_namespaced_deployment_status(f"{name}-{LEGACY}", ns).status
                      .ready_replicas or 0) == 2, what="legacy Deployment ready, as it had been")
    apps.delete_namespaced_deployment(f"{name}-{revision}", ns)
    wait_for(lambda: revision not in cluster.deployments(ns, name), what="v1 Deployment gone")
    cluster.core.patch_namespaced_service(name, ns, {"spec": {"selector": {
        contract.LABEL_REVISION: LEGACY}}})
    cluster.custom.patch_namespaced_custom_object_status(
        contract.API_GROUP, contract.API_VERSION, ns, contract.MODEL_PLURAL, name,
        {"status": {"revisions": None, "servingRevision": LEGACY, "servingVersion": "1"}},
        _content_type="application/merge-patch+json")


def test_operator_upgrade_from_status_without_revision_records_is_not_an_outage(
        control_plane, crds, namespace, tmp_path):
    """Issue 10's migration: the upgraded operator adopts the legacy Deployment; the Service
    stays on it until the spec's revision is ready, then moves, then the legacy one goes."""
    cluster, ns = Cluster(control_plane.api_client()), namespace
    log = tmp_path / "operator.log"
    operator = OperatorProcess(control_plane.kubeconfig, log).start()
    cluster.create(ns, _model("iris"))
    v1 = _revision()
    wait_for(lambda: v1 in cluster.deployments(ns, "iris"), what="v1 Deployment")
    wait_for(lambda: cluster.mark_pods_ready(ns, "iris", v1) == 2, what="v1 pods")
    wait_for(lambda: cluster.condition(ns, "iris") == ("True", "Serving"), what="v1 serving")
    operator.kill()
    _make_legacy(cluster, ns, "iris", v1)
    operator = OperatorProcess(control_plane.kubeconfig, log).start()
    try:
        wait_for(lambda: v1 in cluster.deployments(ns, "iris"), what="the spec's revision made")
        wait_for(lambda: ("Normal", "Adopted") in cluster.events(ns, "iris", ours_only=True),
                 what="the Adopted Event")
        for _ in range(5):  # while v1's pods are not ready, traffic stays on the legacy pods
            assert cluster.service_revision(ns, "iris") == LEGACY
            assert LEGACY in cluster.deployments(ns, "iris")
            time.sleep(1)
        wait_for(lambda: cluster.mark_pods_ready(ns, "iris", v1) == 2, what="v1 pods again")
        wait_for(lambda: cluster.service_revision(ns, "iris") == v1, what="Service on v1")
        wait_for(lambda: LEGACY not in cluster.deployments(ns, "iris"), what="legacy deleted")
        wait_for(lambda: cluster.condition(ns, "iris") == ("True", "Serving"), what="Serving")
        assert "legacyRevision" not in cluster.model(ns, "iris")["status"]
    finally:
        operator.stop()
