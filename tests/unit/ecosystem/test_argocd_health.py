"""The Argo CD health checks in deploy/argocd, run in Lua 5.1 as Argo CD runs them.

Every case of each health_test.yaml (full objects captured from the real operator), every state
the operator's state machine can produce, the argocd-cm copy of the scripts, and the example
Application.
"""

from __future__ import annotations

import pytest
import yaml

from modelops import contract
from tests.unit.ecosystem.argocd import (CUSTOMIZATIONS, Health, HealthScript, LuaScriptError,
                                         health_cases, load_object)
from tests.unit.ecosystem.states import EXPECTED, MODEL_STATES

KINDS = (contract.MODEL_KIND, contract.PIPELINE_KIND)
CASES = [case for kind in KINDS for case in health_cases(kind)]
SCRIPTS = {kind: HealthScript.for_kind(kind) for kind in KINDS}


@pytest.mark.parametrize("case", CASES, ids=lambda c: f"{c.kind}/{c.input_path.stem}")
def test_health_test_yaml_case(case):
    assert SCRIPTS[case.kind].health(load_object(case.input_path)) == case.expected


@pytest.mark.parametrize("case", CASES, ids=lambda c: f"{c.kind}/{c.input_path.stem}")
def test_each_fixture_has_the_health_its_state_calls_for(case):
    assert case.expected.status == EXPECTED[case.kind][case.input_path.stem][0]


@pytest.mark.parametrize("kind", KINDS)
def test_every_testdata_file_is_a_case_and_every_state_has_one(kind):
    folder = CUSTOMIZATIONS / contract.API_GROUP / kind / "testdata"
    listed = {c.input_path for c in CASES if c.kind == kind}
    assert listed == set(folder.glob("*.yaml"))
    assert {p.stem for p in listed} == set(EXPECTED[kind])


@pytest.mark.parametrize("kind", KINDS)
def test_fixtures_are_full_objects_of_their_kind(kind):
    for case in (c for c in CASES if c.kind == kind):
        obj = load_object(case.input_path)
        assert obj["apiVersion"] == contract.API_GROUP_VERSION and obj["kind"] == kind
        assert {"name", "namespace", "uid", "generation"} <= set(obj["metadata"])
        assert "managedFields" not in obj["metadata"]
        if case.input_path.stem != "created":
            assert obj["status"]["observedGeneration"] >= 1 and obj["status"]["conditions"]


@pytest.mark.parametrize("state", MODEL_STATES, ids=lambda s: s.name)
def test_state_machine_output_gets_the_expected_health(state):
    assert SCRIPTS[contract.MODEL_KIND].health(state.build()).status == state.argocd


def _serving_model() -> dict:
    return load_object(CUSTOMIZATIONS / contract.API_GROUP / "Model" / "testdata" / "serving.yaml")


def test_generation_gate_comes_before_everything_else():
    obj = _serving_model()
    obj["metadata"]["generation"] += 1
    obj["spec"]["suspend"] = True
    obj["status"]["conditions"].append({"type": "Stalled", "status": "True", "reason": "X"})
    generation = obj["metadata"]["generation"]
    assert SCRIPTS["Model"].health(obj) == Health(
        "Progressing", f"Waiting for the operator to observe generation {generation}")


def test_a_ready_condition_older_than_the_status_is_not_trusted():
    obj = _serving_model()
    ready = next(c for c in obj["status"]["conditions"] if c["type"] == "Ready")
    ready["observedGeneration"] = obj["metadata"]["generation"] - 1
    assert SCRIPTS["Model"].health(obj).status == "Progressing"


@pytest.mark.parametrize("conditions, status", [
    ([{"type": "Ready", "status": "True"}, {"type": "Degraded", "status": "True"}], "Degraded"),
    ([{"type": "Ready", "status": "True"}, {"type": "Reconciling", "status": "True"}],
     "Progressing"),
    ([{"type": "Ready", "status": "True"}, {"type": "Reconciling", "status": "False"}], "Healthy"),
    ([{"type": "Ready", "status": "Unknown"}], "Progressing"),
    ([{"type": "Ready", "status": "False"}], "Progressing"),
    ([{"type": "Stalled", "status": "True"}, {"type": "Ready", "status": "True"}], "Degraded"),
    ([], "Progressing"),
])
def test_condition_rules(conditions, status):
    obj = _serving_model()
    obj["status"]["conditions"] = [{**c, "reason": "R", "message": "m"} for c in conditions]
    assert SCRIPTS["Model"].health(obj).status == status


@pytest.mark.parametrize("kind", KINDS)
def test_partial_objects_do_not_break_the_script(kind):
    for obj in ({"metadata": {}}, {"metadata": {}, "status": {}},
                {"metadata": {"generation": 1}, "status": {"observedGeneration": 1,
                                                           "conditions": [{}]}}):
        assert SCRIPTS[kind].health(obj).status == "Progressing"


def test_runner_refuses_what_argocd_cm_scripts_cannot_use():
    with pytest.raises(LuaScriptError, match="string"):
        HealthScript('return {status = string.upper("healthy")}').health({})
    with pytest.raises(LuaScriptError, match="index a string"):
        HealthScript('return {status = ("x"):upper()}').health({})
    assert HealthScript('return {status = "Fine"}').health({}) == Health(
        "Unknown", "Lua returned an invalid health status")


@pytest.mark.parametrize("kind", KINDS)
def test_argocd_cm_installs_exactly_the_scripts(kind):
    config = yaml.safe_load((CUSTOMIZATIONS / "argocd-cm.yaml").read_text())
    assert (config["kind"], config["metadata"]["name"]) == ("ConfigMap", "argocd-cm")
    key = f"resource.customizations.health.{contract.API_GROUP}_{kind}"
    assert config["data"][key] == SCRIPTS[kind].source


def test_example_applications_point_at_this_repositorys_layout():
    apps = list(yaml.safe_load_all((CUSTOMIZATIONS / "application.yaml").read_text()))
    root = CUSTOMIZATIONS.parents[1]
    for app in apps:
        assert (app["apiVersion"], app["kind"]) == ("argoproj.io/v1alpha1", "Application")
        assert (root / app["spec"]["source"]["path"] / "kustomization.yaml").is_file()
        assert app["spec"]["destination"]["namespace"]
    assert {a["spec"]["source"]["path"] for a in apps} == {"deploy", "deploy/samples"}
