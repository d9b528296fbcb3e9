"""Operator settings: a frozen dataclass read once from `MODELOPS_OPERATOR_*` environment variables.

Handlers and builders receive these values as arguments; nothing else in the operator reads the
environment. Every field documents the variable that sets it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, fields
from typing import Mapping

from modelops import contract

PREFIX = "MODELOPS_OPERATOR_"


@dataclass(frozen=True)
class OperatorSettings:
    serving_image: str = contract.DEFAULT_SERVING_IMAGE
    """MODELOPS_OPERATOR_SERVING_IMAGE: the shared serving image every Model and router runs."""
    image_pull_policy: str = "IfNotPresent"
    """MODELOPS_OPERATOR_IMAGE_PULL_POLICY: pull policy of serving pods."""
    tick_seconds: float = 5.0
    """MODELOPS_OPERATOR_TICK_SECONDS: how often each Model's rollout and analysis are observed."""
    prometheus_url: str = ""
    """MODELOPS_OPERATOR_PROMETHEUS_URL: query this Prometheus instead of scraping pods."""
    scrape_timeout_seconds: float = 2.0
    """MODELOPS_OPERATOR_SCRAPE_TIMEOUT_SECONDS: timeout of one metrics scrape or query."""
    metrics_port: int = contract.OPERATOR_METRICS_PORT
    """MODELOPS_OPERATOR_METRICS_PORT: port of the operator's own /metrics (0 disables it)."""
    health_port: int = contract.OPERATOR_HEALTH_PORT
    """MODELOPS_OPERATOR_HEALTH_PORT: port of the liveness endpoint /healthz."""
    cluster_domain: str = "cluster.local"
    """MODELOPS_OPERATOR_CLUSTER_DOMAIN: DNS suffix used in Service URLs."""
    max_workers: int = 20
    """MODELOPS_OPERATOR_MAX_WORKERS: threads that run synchronous handlers."""
    mlflow_alias_ttl_seconds: float = 30.0
    """MODELOPS_OPERATOR_MLFLOW_ALIAS_TTL_SECONDS: how long a resolved models:/<name>@<alias> is
    reused before the tracking server is asked again (how soon a moved alias is noticed)."""
    mlflow_timeout_seconds: float = 5.0
    """MODELOPS_OPERATOR_MLFLOW_TIMEOUT_SECONDS: timeout of one alias lookup."""

    @classmethod
    def from_env(cls, environ: Mapping[str, str] = os.environ) -> "OperatorSettings":
        values = {}
        for field in fields(cls):
            raw = environ.get(PREFIX + field.name.upper())
            if raw is None:
                continue
            try:
                values[field.name] = type(field.default)(raw)
            except ValueError:
                raise ValueError(f"{PREFIX}{field.name.upper()}={raw!r} is not a valid "
                                 f"{type(field.default).__name__}") from None
        return cls(**values)
