"""kstatus (what Flux and kpt read), computed by sigs.k8s.io/cli-utils itself, over our statuses.

The pinned cli-utils module is built into a small binary (tools/gitops/kstatus, on first use;
a build failure fails these tests with the build's output). Table-driven: every state of
states.MODEL_STATES (the operator's state machine, pass by pass) and every fixture captured from
the real operator under deploy/argocd is one row; a new state is a new row there, with the
kstatus status it must show. A few hand-made objects pin the rules the docs rely on.
"""

from __future__ import annotations

import re

import pytest

from modelops import contract
from tests.unit.ecosystem import gitops_tools
from tests.unit.ecosystem.argocd import BUILD_TIMEOUT, ROOT, health_cases, load_object
from tests.unit.ecosystem.states import EXPECTED, MODEL_STATES

CAPTURED = [c for kind in (contract.MODEL_KIND, contract.PIPELINE_KIND) for c in health_cases(kind)]

pytestmark = BUILD_TIMEOUT


def _obj(generation=3, observed=3, conditions=(), **meta) -> dict:
    return {"apiVersion": contract.API_GROUP_VERSION, "kind": "Model",
            "metadata": {"name": "m", "generation": generation, **meta},
            "status": {"observedGeneration": observed, "conditions": list(conditions)}}


def _c(type_, status, reason="R"):
    return {"type": type_, "status": status, "reason": reason, "message": f"{type_} {status}"}


RULES = [  # (object, what cli-utils says): the reading the docs' table is built on
    (_obj(deletionTimestamp="2026-01-01T00:00:00Z", conditions=[_c("Ready", "True")]),
     "Terminating"),
    (_obj(observed=2, conditions=[_c("Ready", "True")]), "InProgress"),
    (_obj(conditions=[_c("Ready", "True"), _c("Reconciling", "True")]), "InProgress"),
    (_obj(conditions=[_c("Ready", "True"), _c("Stalled", "True")]), "Failed"),
    (_obj(conditions=[_c("Ready", "False")]), "InProgress"),
    (_obj(conditions=[_c("Ready", "True"), _c("Stalled", "False")]), "Current"),
    (_obj(conditions=[_c("Ready", "True"), _c("Degraded", "True")]), "Current"),
    ({"apiVersion": contract.API_GROUP_VERSION, "kind": "Model",
      "metadata": {"name": "m", "generation": 1}}, "Current"),
]


def _statuses(objects: list[dict]) -> list[str]:
    try:
        results = gitops_tools.kstatus(objects)
    except gitops_tools.ToolUnavailable as error:
        pytest.fail(str(error))
    assert not [r for r in results if r.error], results
    return [r.status for r in results]


def test_the_rules_the_docs_rely_on():
    assert _statuses([obj for obj, _ in RULES]) == [status for _, status in RULES]


def test_stale_generation_message_comes_from_cli_utils():
    [result] = gitops_tools.kstatus([_obj(generation=4, observed=3)])
    assert (result.status, result.message) == (
        "InProgress", "Model generation is 4, but latest observed generation is 3")


def test_every_state_the_state_machine_produces():
    got = dict(zip((s.name for s in MODEL_STATES),
                   _statuses([s.build() for s in MODEL_STATES])))
    assert got == {s.name: s.kstatus for s in MODEL_STATES}


def test_every_status_captured_from_the_operator():
    got = _statuses([load_object(c.input_path) for c in CAPTURED])
    names = [f"{c.kind}/{c.input_path.stem}" for c in CAPTURED]
    assert dict(zip(names, got)) == {
        f"{c.kind}/{c.input_path.stem}": EXPECTED[c.kind][c.input_path.stem][1] for c in CAPTURED}


def test_the_docs_table_says_what_the_tests_check():
    doc = (ROOT / "docs" / "ecosystem.md").read_text()
    rows = re.findall(r"^\| (Model|ModelPipeline) \| ([\w-]+) \| (\w+) \| (\w+) \|$", doc, re.M)
    assert {(kind, state): (argocd, flux) for kind, state, argocd, flux in rows} == {
        (kind, state): health for kind, states in EXPECTED.items()
        for state, health in states.items()}
