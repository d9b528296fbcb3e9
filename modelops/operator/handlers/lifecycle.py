"""Operator start-up: settings read once, kopf configured, the operator's own /metrics served.

`SETTINGS` and `MONITOR` are created here, at import, because kopf's timer intervals must be
known when the handlers are registered.
"""

from __future__ import annotations

import logging
from typing import Any

import kopf

from modelops.operator import kube, metrics
from modelops.operator.monitor import Monitor
from modelops.operator.settings import OperatorSettings

SETTINGS = OperatorSettings.from_env()
MONITOR = Monitor(SETTINGS)


@kopf.on.startup()
def configure(settings: kopf.OperatorSettings, logger: logging.Logger, **_: Any) -> None:
    # Our own marks on user objects carry our name, never kopf's default zalando.org prefix.
    settings.persistence.finalizer = "modelops.io/finalizer"
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix="modelops.io")
    settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(
        prefix="modelops.io", key="last-handled-configuration")
    # Synchronous handlers call the API; enough threads that one slow Model does not stall others.
    settings.execution.max_workers = SETTINGS.max_workers
    # Reconnect watches regularly so a silently dropped connection cannot freeze the operator.
    settings.watching.server_timeout = 300
    settings.watching.client_timeout = 330
    settings.posting.level = logging.INFO
    kube.configure(pool_size=SETTINGS.max_workers)
    metrics.serve(SETTINGS.metrics_port)
    logger.info(f"Serving image {SETTINGS.serving_image}; metrics source "
                f"{SETTINGS.prometheus_url or 'pod scraping'}")
