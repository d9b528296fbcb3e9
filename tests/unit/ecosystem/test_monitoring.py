"""deploy/monitoring manifests agree with the operator, the serving pods and each other.

The PodMonitor selects what the operator's builders label and scrapes the port and path the
serving image serves; the ServiceMonitor selects the operator's metrics Service of
deploy/operator.yaml by its port name; the PrometheusRule carries exactly rules.yaml's groups;
the alerts use the contract's metric names; rules_test.yaml has a firing and a non-firing case
for every alert (promtool runs it in tests/prometheus/test_rules.py).
"""

from __future__ import annotations

import re

import pytest
import yaml

from modelops import contract
from modelops.operator.builders import build_deployment
from modelops.operator.spec import parse_model
from tests.factories import model_spec
from tests.unit.ecosystem.dashboard import ROOT

MONITORING = ROOT / "deploy" / "monitoring"
ALERTS = {"ModelRolledBack", "ModelNotReady", "ModelErrorRateHigh", "ModelMetricsUnavailable"}


def _load(name: str) -> dict:
    return yaml.safe_load((MONITORING / name).read_text())


def _operator_metrics_service() -> dict:
    docs = yaml.safe_load_all((ROOT / "deploy" / "operator.yaml").read_text())
    return next(d for d in docs if d and d["kind"] == "Service")


def test_pod_monitor_scrapes_the_serving_pods_the_operator_builds():
    monitor = _load("podmonitor.yaml")
    deployment = build_deployment("iris", parse_model(model_spec()),
                                  image=contract.DEFAULT_SERVING_IMAGE)
    pod = deployment["spec"]["template"]
    assert monitor["spec"]["selector"]["matchLabels"] == {
        contract.LABEL_MANAGED_BY: contract.MANAGED_BY}
    assert contract.LABEL_MANAGED_BY in pod["metadata"]["labels"]
    endpoint = monitor["spec"]["podMetricsEndpoints"][0]
    ports = {p["name"] for c in pod["spec"]["containers"] for p in c.get("ports", [])}
    assert endpoint["port"] == contract.PORT_NAME and contract.PORT_NAME in ports
    assert endpoint["path"] == contract.PATH_METRICS
    assert monitor["spec"]["namespaceSelector"] == {"any": True}


def test_service_monitor_selects_the_operator_metrics_service():
    monitor, service = _load("servicemonitor.yaml"), _operator_metrics_service()
    labels = service["metadata"]["labels"]
    assert monitor["spec"]["selector"]["matchLabels"].items() <= labels.items()
    assert monitor["spec"]["namespaceSelector"]["matchNames"] == [service["metadata"]["namespace"]]
    endpoint = monitor["spec"]["endpoints"][0]
    assert endpoint["port"] in {p["name"] for p in service["spec"]["ports"]}
    assert service["spec"]["ports"][0]["port"] == contract.OPERATOR_METRICS_PORT
    assert endpoint["honorLabels"] is True, "the metrics' own namespace label must win"


def test_prometheus_rule_carries_exactly_the_rules_file():
    rule = _load("prometheusrule.yaml")
    assert (rule["apiVersion"], rule["kind"]) == ("monitoring.coreos.com/v1", "PrometheusRule")
    assert rule["spec"]["groups"] == _load("rules.yaml")["groups"]


def test_alerts_use_contract_metrics():
    rules = {r["alert"]: r for g in _load("rules.yaml")["groups"] for r in g["rules"]}
    assert set(rules) == ALERTS
    assert contract.METRIC_ROLLBACKS in rules["ModelRolledBack"]["expr"]
    assert contract.METRIC_REQUESTS in rules["ModelErrorRateHigh"]["expr"]
    for name in ("ModelNotReady", "ModelMetricsUnavailable"):
        assert contract.METRIC_MODEL_STATUS in rules[name]["expr"] and rules[name]["for"] == "10m"
    known = {getattr(contract, n) for n in dir(contract) if n.startswith("METRIC_")}
    for rule in rules.values():
        assert set(re.findall(r"\bmodelops_\w+", rule["expr"])) <= known
        assert rule["labels"]["severity"] in ("warning", "critical")
        assert {"summary", "description"} <= set(rule["annotations"])


@pytest.mark.parametrize("alert", sorted(ALERTS))
def test_every_alert_has_a_firing_and_a_quiet_case(alert):
    cases = [c for t in _load("rules_test.yaml")["tests"] for c in t["alert_rule_test"]
             if c["alertname"] == alert]
    assert any(c["exp_alerts"] for c in cases) and any(not c["exp_alerts"] for c in cases)


def test_kustomization_lists_every_manifest_and_ships_the_dashboard():
    kustomization = _load("kustomization.yaml")
    assert set(kustomization["resources"]) == {
        "podmonitor.yaml", "servicemonitor.yaml", "prometheusrule.yaml"}
    generated = kustomization["configMapGenerator"][0]
    assert generated["files"] == ["grafana-dashboard.json"]
    assert generated["options"]["labels"] == {"grafana_dashboard": "1"}
