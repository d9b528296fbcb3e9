"""The operator's own Prometheus metrics (rollbacks, decisions, model status), on its /metrics."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, start_http_server

from modelops import contract

ROLLBACKS = Counter(contract.METRIC_ROLLBACKS.removesuffix("_total"),
                    "Automatic rollbacks performed", ["namespace", "model", "from", "to"])
DECISIONS = Counter(contract.METRIC_DECISIONS.removesuffix("_total"),
                    "Analysis decisions made", ["namespace", "model", "result"])
MODEL_STATUS = Gauge(contract.METRIC_MODEL_STATUS,
                     "1 when the Model's condition is True, 0 otherwise",
                     ["namespace", "model", "condition"])
ERROR_RATE = Gauge(contract.METRIC_ANALYSIS_ERROR_RATE,
                   "Error rate of the serving version in the last analysis window",
                   ["namespace", "model", "version"])

PASSES = Counter("modelops_operator_passes", "Reconcile passes run by the work queues", ["kind"])


def serve(port: int) -> None:
    if port:
        start_http_server(port)


def record_status(namespace: str, model: str, conditions: list[dict]) -> None:
    for condition in conditions:
        MODEL_STATUS.labels(namespace, model, condition["type"]).set(
            1 if condition.get("status") == "True" else 0)


def forget_model(namespace: str, model: str) -> None:
    for gauge in (MODEL_STATUS, ERROR_RATE):
        for labels in list(gauge._metrics):  # prometheus-client has no "remove by prefix"
            if labels[:2] == (namespace, model):
                gauge.remove(*labels)
