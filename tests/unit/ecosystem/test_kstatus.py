"""kstatus (what Flux and kpt read) over the statuses the operator writes in each state.

DESIGN: stale generation -> InProgress, Reconciling=True -> InProgress, Stalled=True -> Failed,
Ready=True -> Current. The objects come from the operator's state machine (every state) and from
the testdata captured from the real operator; the helper itself is checked against cli-utils'
rules first, so a pass here means what it says.
"""

from __future__ import annotations

import re

import pytest

from modelops import contract
from tests.unit.ecosystem import kstatus
from tests.unit.ecosystem.argocd import ROOT, health_cases, load_object
from tests.unit.ecosystem.states import EXPECTED, MODEL_STATES

CAPTURED = [c for kind in (contract.MODEL_KIND, contract.PIPELINE_KIND) for c in health_cases(kind)]


def _obj(generation=3, observed=3, conditions=(), **meta) -> dict:
    return {"kind": "Model", "metadata": {"generation": generation, **meta},
            "status": {"observedGeneration": observed, "conditions": list(conditions)}}


def _c(type_, status, reason="R"):
    return {"type": type_, "status": status, "reason": reason, "message": f"{type_} {status}"}


@pytest.mark.parametrize("obj, status", [
    (_obj(deletionTimestamp="2026-01-01T00:00:00Z", conditions=[_c("Ready", "True")]),
     kstatus.TERMINATING),
    (_obj(observed=2, conditions=[_c("Ready", "True")]), kstatus.IN_PROGRESS),
    (_obj(conditions=[_c("Ready", "True"), _c("Reconciling", "True")]), kstatus.IN_PROGRESS),
    (_obj(conditions=[_c("Ready", "True"), _c("Stalled", "True")]), kstatus.FAILED),
    # the first abnormal-true condition in list order decides
    (_obj(conditions=[_c("Stalled", "True"), _c("Reconciling", "True")]), kstatus.FAILED),
    (_obj(conditions=[_c("Reconciling", "True"), _c("Stalled", "True")]), kstatus.IN_PROGRESS),
    (_obj(conditions=[_c("Ready", "False")]), kstatus.IN_PROGRESS),
    (_obj(conditions=[_c("Ready", "Unknown")]), kstatus.IN_PROGRESS),
    (_obj(conditions=[_c("Ready", "True"), _c("Stalled", "False")]), kstatus.CURRENT),
    (_obj(conditions=[_c("Degraded", "True")]), kstatus.CURRENT),  # not a kstatus condition
    ({"kind": "Model", "metadata": {"generation": 1}}, kstatus.CURRENT),
])
def test_helper_follows_cli_utils(obj, status):
    assert kstatus.compute(obj).status == status


def test_stale_generation_message_and_reason_match_cli_utils():
    result = kstatus.compute(_obj(generation=4, observed=3))
    assert result == kstatus.Result(kstatus.IN_PROGRESS,
                                    "Model generation is 4, but latest observed generation is 3",
                                    "LatestGenerationNotObserved")


def test_a_non_integer_generation_is_an_error_as_in_nested_int64():
    with pytest.raises(TypeError, match="status.observedGeneration"):
        kstatus.compute(_obj(observed="3"))


@pytest.mark.parametrize("state", MODEL_STATES, ids=lambda s: s.name)
def test_state_machine_output(state):
    assert kstatus.compute(state.build()).status == state.kstatus


@pytest.mark.parametrize("case", CAPTURED, ids=lambda c: f"{c.kind}/{c.input_path.stem}")
def test_statuses_captured_from_the_operator(case):
    obj = load_object(case.input_path)
    assert kstatus.compute(obj).status == EXPECTED[case.kind][case.input_path.stem][1]


def test_the_docs_table_says_what_the_tests_check():
    doc = (ROOT / "docs" / "ecosystem.md").read_text()
    rows = re.findall(r"^\| (Model|ModelPipeline) \| ([\w-]+) \| (\w+) \| (\w+) \|$", doc, re.M)
    assert {(kind, state): (argocd, flux) for kind, state, argocd, flux in rows} == {
        (kind, state): health for kind, states in EXPECTED.items()
        for state, health in states.items()}
