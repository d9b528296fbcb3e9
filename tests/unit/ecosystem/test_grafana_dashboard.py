"""deploy/monitoring/grafana-dashboard.json: Grafana's dashboard schema rules and our own.

The schema rules are those of Grafana's dashboard kind (kinds/dashboard/dashboard_kind.cue):
uid of 8-40 characters, schemaVersion a uint16 of at least 36, graphTooltip 0-2, gridPos
within the 24-column grid, variable types and `hide` values from its enums, annotations with
name/datasource/enable/iconColor. Ours: every panel and query uses the datasource variable,
ids are unique, panels do not overlap, every target has an expression over the metric names of
modelops/contract.py, and the panels the README promises exist. Whether the queries run is
tests/prometheus/test_dashboard.py's job.
"""

from __future__ import annotations

import re

import pytest

from modelops import contract
from tests.unit.ecosystem import dashboard

BOARD = dashboard.load()
PANELS = BOARD["panels"]
QUERY_PANELS = [p for p in PANELS if p["type"] != "row"]
VARIABLE_TYPES = {"query", "adhoc", "constant", "datasource", "interval", "textbox", "custom",
                  "system"}
GRAFANA_VARIABLES = {"__rate_interval", "__range", "__interval"}
DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}
HISTOGRAM_SUFFIXES = ("_bucket", "_sum", "_count")


def test_top_level_follows_the_dashboard_kind():
    assert 8 <= len(BOARD["uid"]) <= 40 and BOARD["title"]
    assert isinstance(BOARD["schemaVersion"], int) and 36 <= BOARD["schemaVersion"] < 2 ** 16
    assert BOARD["graphTooltip"] in (0, 1, 2)
    assert 0 <= BOARD.get("fiscalYearStartMonth", 0) < 12
    assert set(BOARD["time"]) == {"from", "to"}
    assert BOARD["refresh"] is False or re.fullmatch(r"\d+[smhd]", BOARD["refresh"])


@pytest.mark.parametrize("panel", PANELS, ids=lambda p: p["title"])
def test_grid_positions_fit_the_24_column_grid(panel):
    grid = panel["gridPos"]
    assert all(isinstance(grid[k], int) for k in "hwxy")
    assert grid["h"] > 0 and 0 < grid["w"] <= 24 and 0 <= grid["x"] < 24 and grid["y"] >= 0
    assert grid["x"] + grid["w"] <= 24


def test_panels_do_not_overlap_and_ids_are_unique():
    cells = {}
    for panel in PANELS:
        g = panel["gridPos"]
        for x in range(g["x"], g["x"] + g["w"]):
            for y in range(g["y"], g["y"] + g["h"]):
                assert (x, y) not in cells, f"{panel['title']} overlaps {cells[(x, y)]}"
                cells[(x, y)] = panel["title"]
    ids = [p["id"] for p in PANELS]
    assert len(ids) == len(set(ids)) and all(isinstance(i, int) for i in ids)


def test_variables_follow_the_kind_and_include_the_datasource():
    variables = BOARD["templating"]["list"]
    assert all(v["type"] in VARIABLE_TYPES and v.get("hide", 0) in (0, 1, 2) for v in variables)
    source = next(v for v in variables if v["name"] == "datasource")
    assert (source["type"], source["query"]) == ("datasource", "prometheus")
    for variable in (v for v in variables if v["type"] == "query"):
        assert variable["datasource"] == DATASOURCE and variable["query"]["query"]
        assert variable["allValue"] == ".*", "All must match every value in =~ selectors"


@pytest.mark.parametrize("panel", QUERY_PANELS, ids=lambda p: p["title"])
def test_every_panel_queries_the_selected_datasource(panel):
    assert panel["datasource"] == DATASOURCE and panel["targets"]
    ref_ids = [t["refId"] for t in panel["targets"]]
    assert len(ref_ids) == len(set(ref_ids))
    for target in panel["targets"]:
        assert target["datasource"] == DATASOURCE and target["expr"].strip()


def test_annotations_follow_the_kind_and_mark_rollbacks():
    annotations = BOARD["annotations"]["list"]
    for annotation in annotations:
        assert {"name", "datasource", "enable", "iconColor"} <= set(annotation)
    rollbacks = next(a for a in annotations if a["name"] == "Rollbacks")
    assert rollbacks["datasource"] == DATASOURCE and rollbacks["enable"] is True
    assert contract.METRIC_ROLLBACKS in rollbacks["expr"]
    assert "{{from}}" in rollbacks["textFormat"] and "{{to}}" in rollbacks["textFormat"]


def test_every_query_uses_only_declared_variables():
    declared = {v["name"] for v in BOARD["templating"]["list"]} | GRAFANA_VARIABLES
    for where, expr in dashboard.queries(BOARD):
        used = set(re.findall(r"\$\{?(\w+)\}?", expr))
        assert used <= declared, f"{where} uses undeclared {used - declared}"
        dashboard.expand(expr, {name: "x" for name in declared})


def test_every_metric_name_is_one_of_the_contract():
    known = {getattr(contract, n) for n in dir(contract) if n.startswith("METRIC_")}
    for where, expr in dashboard.queries(BOARD):
        for name in set(re.findall(r"\bmodelops_\w+", expr)):
            base = next((name.removesuffix(s) for s in HISTOGRAM_SUFFIXES if name.endswith(s)),
                        name)
            assert name in known or base in known, f"{where}: unknown metric {name}"


ERRORS = f'{contract.METRIC_REQUESTS}{{namespace=~"$namespace", model=~"$model", code=~"5..'
BY_VERSION = "by (namespace, model, version"
PROMISED = [  # (what the README shows, pieces its query must have, unit)
    ("requests/s per model and version", (contract.METRIC_REQUESTS, BY_VERSION + ")"), "reqps"),
    ("error rate per model and version", (ERRORS, BY_VERSION + ")"), "percentunit"),
    ("p50 latency per model and version",
     ("histogram_quantile(0.5, ", contract.METRIC_LATENCY, BY_VERSION + ", le)"), "s"),
    ("p99 latency per model and version",
     ("histogram_quantile(0.99, ", contract.METRIC_LATENCY, BY_VERSION + ", le)"), "s"),
    ("pipeline per-step latency", (contract.METRIC_STEP_LATENCY, "by (pipeline, step, le)"), "s"),
]


@pytest.mark.parametrize("what, pieces, unit", PROMISED, ids=[p[0] for p in PROMISED])
def test_the_promised_panels_exist(what, pieces, unit):
    assert [p for p in QUERY_PANELS if p["fieldConfig"]["defaults"].get("unit") == unit
            and any(all(piece in t["expr"] for piece in pieces) for t in p["targets"])], what


@pytest.mark.parametrize("panel", [p for p in QUERY_PANELS if p["type"] == "timeseries"],
                         ids=lambda p: p["title"])
def test_time_series_legends_name_every_grouping_label(panel):
    for target in panel["targets"]:
        grouped = {label.strip() for by in re.findall(r"by \(([^)]*)\)", target["expr"])
                   for label in by.split(",")} - {"le"}
        shown = set(re.findall(r"\{\{(\w+)\}\}", target["legendFormat"]))
        assert grouped <= shown, f"{panel['title']}: legend misses {grouped - shown}"
