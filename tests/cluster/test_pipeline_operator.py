"""ModelPipeline on the real control plane: the router it runs, and status aggregated from the
step Models (Ready only when all are; the reason names the first that is not; a deleted step
Model is reported, not a crash)."""

from __future__ import annotations

import json


from modelops import contract
from modelops.operator.builders import router_name
from tests.cluster.support import wait_for
from tests.cluster.test_model_operator import _model, _revision
from tests.factories import SHA_B

PIPELINE = {"steps": [{"name": "price", "model": "house-price"},
                      {"name": "diagnosis", "model": "diagnosis", "input": "features+previous"}],
            "timeoutSeconds": 3}


def _pipeline(name: str = "dx") -> dict:
    return {"apiVersion": contract.API_GROUP_VERSION, "kind": contract.PIPELINE_KIND,
            "metadata": {"name": name}, "spec": PIPELINE}


def _steps(cluster, ns):
    return cluster.model(ns, "dx", contract.PIPELINE_PLURAL).get("status", {}).get("steps")


def test_pipeline_runs_a_router_and_aggregates_step_status(cluster, namespace):
    plural = contract.PIPELINE_PLURAL
    cluster.create(namespace, _pipeline(), plural)
    router = wait_for(lambda: next(iter(cluster.apps.list_namespaced_deployment(
        namespace, label_selector=f"{contract.LABEL_PIPELINE}=dx").items), None), what="router")
    env = {e.name: e.value for e in router.spec.template.spec.containers[0].env}
    assert router.metadata.name == router_name("dx")
    assert env[contract.ENV_MODE] == "pipeline"
    steps = json.loads(env[contract.ENV_PIPELINE_STEPS])
    assert [s["url"] for s in steps] == [
        f"http://house-price.{namespace}.svc.cluster.local:80",
        f"http://diagnosis.{namespace}.svc.cluster.local:80"]
    wait_for(lambda: cluster.condition(namespace, "dx", plural=plural) ==
             ("False", "StepModelMissing"), what="missing steps reported")
    assert cluster.condition(namespace, "dx", "Stalled", plural) == ("True", "StepModelMissing")

    cluster.create(namespace, _model("house-price"))
    cluster.create(namespace, _model("diagnosis", version="2", sha256=SHA_B))
    wait_for(lambda: cluster.condition(namespace, "dx", plural=plural) ==
             ("False", "StepNotReady"), what="steps exist but are not ready")
    message = [c for c in cluster.model(namespace, "dx", plural)["status"]["conditions"]
               if c["type"] == "Ready"][0]["message"]
    assert message.startswith("step price: Model house-price is not Ready")

    for name, revision in (("house-price", _revision()),
                           ("diagnosis", _revision(version="2", sha256=SHA_B))):
        wait_for(lambda: cluster.mark_pods_ready(namespace, name, revision) == 2, what=name)
        wait_for(lambda: cluster.condition(namespace, name)[0] == "True", what=f"{name} Ready")
    wait_for(lambda: cluster.condition(namespace, "dx", plural=plural) ==
             ("False", "RouterNotReady"), what="router not ready")
    wait_for(lambda: cluster.mark_ready(namespace, f"{contract.LABEL_PIPELINE}=dx") == 1,
             what="router pod")
    wait_for(lambda: cluster.condition(namespace, "dx", plural=plural) ==
             ("True", "AllStepsReady"), what="pipeline Ready")
    assert _steps(cluster, namespace) == [
        {"name": "price", "model": "house-price", "ready": True, "servingVersion": "1"},
        {"name": "diagnosis", "model": "diagnosis", "ready": True, "servingVersion": "2"}]
    wait_for(lambda: ("Normal", "AllStepsReady") in cluster.events(namespace, "dx"), what="Event")

    cluster.custom.delete_namespaced_custom_object(contract.API_GROUP, contract.API_VERSION,
                                                   namespace, contract.MODEL_PLURAL, "diagnosis")
    wait_for(lambda: cluster.condition(namespace, "dx", plural=plural) ==
             ("False", "StepModelMissing"), what="deleted step reported")
    wait_for(lambda: ("Warning", "StepModelMissing") in cluster.events(namespace, "dx"),
             what="Event")
