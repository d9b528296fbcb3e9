"""The Argo CD health checks in deploy/argocd, evaluated by Argo CD v3.6.1's own code.

Each object goes through tools/gitops/argocd-health (built on first use; a failed build fails
these tests with its output): argocd-cm.yaml is read by Argo CD's settings manager and the
script runs in Argo CD's Lua VM, as a controller would run it. Table-driven: every case of each
health_test.yaml (full objects captured from the real operator), every state of the operator's
state machine (states.MODEL_STATES), the condition rules, and scripts Argo CD must refuse.
"""

from __future__ import annotations

import copy

import pytest
import yaml

from modelops import contract
from tests.unit.ecosystem.argocd import (BUILD_TIMEOUT, CUSTOMIZATIONS, Health, health,
                                         health_cases, load_object)
from tests.unit.ecosystem.states import EXPECTED, MODEL_STATES

KINDS = (contract.MODEL_KIND, contract.PIPELINE_KIND)
CASES = [case for kind in KINDS for case in health_cases(kind)]

pytestmark = BUILD_TIMEOUT


def _name(case) -> str:
    return f"{case.kind}/{case.input_path.stem}"


def test_every_health_test_yaml_case():
    got = health([load_object(c.input_path) for c in CASES])
    assert dict(zip(map(_name, CASES), got)) == {_name(c): c.expected for c in CASES}


@pytest.mark.parametrize("case", CASES, ids=_name)
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


def test_every_state_the_state_machine_produces():
    got = health([s.build() for s in MODEL_STATES])
    assert {s.name: h.status for s, h in zip(MODEL_STATES, got)} == {
        s.name: s.argocd for s in MODEL_STATES}


def _serving_model() -> dict:
    return load_object(CUSTOMIZATIONS / contract.API_GROUP / "Model" / "testdata" / "serving.yaml")


def test_generation_gate_comes_before_everything_else():
    obj = _serving_model()
    obj["metadata"]["generation"] += 1
    obj["spec"]["suspend"] = True
    obj["status"]["conditions"].append({"type": "Stalled", "status": "True", "reason": "X"})
    generation = obj["metadata"]["generation"]
    assert health([obj]) == [Health(
        "Progressing", f"Waiting for the operator to observe generation {generation}")]


def test_a_ready_condition_older_than_the_status_is_not_trusted():
    obj = _serving_model()
    ready = next(c for c in obj["status"]["conditions"] if c["type"] == "Ready")
    ready["observedGeneration"] = obj["metadata"]["generation"] - 1
    assert health([obj])[0].status == "Progressing"


CONDITION_RULES = [
    ([("Ready", "True"), ("Degraded", "True")], "Degraded"),
    ([("Ready", "True"), ("Reconciling", "True")], "Progressing"),
    ([("Ready", "True"), ("Reconciling", "False")], "Healthy"),
    ([("Ready", "Unknown")], "Progressing"),
    ([("Ready", "False")], "Progressing"),
    ([("Stalled", "True"), ("Ready", "True")], "Degraded"),
    ([], "Progressing"),
]


def test_condition_rules():
    objects = []
    for conditions, _ in CONDITION_RULES:
        obj = _serving_model()
        obj["status"]["conditions"] = [{"type": t, "status": s, "reason": "R", "message": "m"}
                                       for t, s in conditions]
        objects.append(obj)
    assert [h.status for h in health(objects)] == [status for _, status in CONDITION_RULES]


@pytest.mark.parametrize("kind", KINDS)
def test_partial_objects_do_not_break_the_script(kind):
    head = {"apiVersion": contract.API_GROUP_VERSION, "kind": kind}
    partial = [{"metadata": {}}, {"metadata": {}, "status": {}},
               {"metadata": {"generation": 1}, "status": {"observedGeneration": 1,
                                                          "conditions": [{}]}}]
    assert [h.status for h in health([{**head, **p} for p in partial])] == ["Progressing"] * 3


def _argocd_cm(tmp_path, script: str):
    config = yaml.safe_load((CUSTOMIZATIONS / "argocd-cm.yaml").read_text())
    config["data"] = {f"resource.customizations.health.{contract.API_GROUP}_Model": script}
    path = tmp_path / "argocd-cm.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


@pytest.mark.parametrize("script, expected, message", [
    # argocd-cm scripts run without the string library and without string methods
    ('return {status = string.upper("healthy")}', "Error",
     "attempt to index a non-table object(nil) with key 'upper'"),
    ('return {status = ("x"):upper()}', "Error",
     "attempt to index a non-table object(string) with key 'upper'"),
    ('return {status = "Fine"}', "Unknown", "Lua returned an invalid health status"),
])
def test_argo_cd_refuses_what_argocd_cm_scripts_cannot_do(tmp_path, script, expected, message):
    [got] = health([_serving_model()], _argocd_cm(tmp_path, script))
    assert (got.status, message in got.message) == (expected, True), got


@pytest.mark.parametrize("kind", KINDS)
def test_argocd_cm_installs_exactly_the_scripts(kind):
    config = yaml.safe_load((CUSTOMIZATIONS / "argocd-cm.yaml").read_text())
    assert (config["kind"], config["metadata"]["name"]) == ("ConfigMap", "argocd-cm")
    key = f"resource.customizations.health.{contract.API_GROUP}_{kind}"
    source = (CUSTOMIZATIONS / contract.API_GROUP / kind / "health.lua").read_text()
    assert config["data"][key] == source


def test_a_kind_without_a_script_has_no_health():
    other = copy.deepcopy(_serving_model())
    other["kind"] = "NotAModelopsKind"
    assert health([other]) == [Health("", "")]


def test_example_applications_point_at_this_repositorys_layout():
    apps = list(yaml.safe_load_all((CUSTOMIZATIONS / "application.yaml").read_text()))
    root = CUSTOMIZATIONS.parents[1]
    for app in apps:
        assert (app["apiVersion"], app["kind"]) == ("argoproj.io/v1alpha1", "Application")
        assert (root / app["spec"]["source"]["path"] / "kustomization.yaml").is_file()
        assert app["spec"]["destination"]["namespace"]
    assert {a["spec"]["source"]["path"] for a in apps} == {"deploy", "deploy/samples"}
