"""Operator start-up: settings read once, kopf configured, the operator's own /metrics served.

`SETTINGS`, `MONITOR`, `SHADOW` and `CANARY` are created here, at import. `INDEXES` holds kopf's index objects once
the first watch event has delivered them (they are the same live objects for every handler), so
work-queue passes, which run outside any kopf handler, read the latest state from them.
"""

from __future__ import annotations

import logging
import socket
from typing import Any, Mapping

import kopf

from modelops import contract
from modelops.operator import kube, metrics
from modelops.operator.handlers.indexes import INDEXES as INDEX_NAMES
from modelops.operator.monitor import Monitor
from modelops.operator.settings import OperatorSettings
from modelops.operator.shadow_monitor import CANARY_STEP, ShadowMonitor

SETTINGS = OperatorSettings.from_env()
MONITOR = Monitor(SETTINGS)
SHADOW = ShadowMonitor(MONITOR.scrape, tick=SETTINGS.tick_seconds)
CANARY = ShadowMonitor(MONITOR.scrape, tick=SETTINGS.tick_seconds, evidence=CANARY_STEP)
INDEXES: dict[str, Any] = {}


class NoDiffBase(kopf.DiffBaseStorage):
    """kopf's diff base, for handlers that never look at it. kopf builds one (a deep copy of
    the whole object, status included) on every watch event of every watched kind, but only
    on.create/update/resume/delete and daemon handlers read it; this operator has none (only
    on.event, indexes and activities: tests/unit/operator/test_handlers.py checks), so that copy
    was pure cost, about a tenth of the operator's CPU with 1000 Models (bench/scale.py)."""

    def build(self, *, body: kopf.Body, extra_fields: Any = None) -> Any:
        return None

    def fetch(self, *, body: kopf.Body) -> Any:
        return None

    def store(self, *, body: kopf.Body, patch: kopf.Patch, essence: Any) -> None:
        return None


def remember_indexes(kwargs: Mapping[str, Any]) -> Mapping[str, Any]:
    """Keep kopf's index objects from a handler's kwargs (first call wins; they never change)."""
    if not INDEXES:
        INDEXES.update({name: kwargs[name] for name in INDEX_NAMES})
    return INDEXES


@kopf.on.startup()
def configure(settings: kopf.OperatorSettings, logger: logging.Logger, **_: Any) -> None:
    # Our own marks on user objects carry our name, never kopf's default zalando.org prefix.
    settings.persistence.finalizer = "modelops.io/finalizer"
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix="modelops.io")
    settings.persistence.diffbase_storage = NoDiffBase()
    # Events say who posted them: `kubectl describe` shows "From modelops-operator", not kopf.
    settings.posting.reporting_component = contract.REPORTING_COMPONENT
    settings.posting.reporting_instance = socket.gethostname()
    settings.execution.max_workers = 4  # handlers only enqueue; passes run on the work queues
    # Reconnect watches regularly so a silently dropped connection cannot freeze the operator.
    settings.watching.server_timeout = 300
    settings.watching.client_timeout = 330
    # Only warnings of kopf's own become Events; "Handler ... succeeded" on every watch event
    # would be an Event (and a log line) per event. Decisions are posted with kopf.event.
    settings.posting.level = logging.WARNING
    logging.getLogger("kopf.objects").setLevel(logging.WARNING)
    kube.configure(pool_size=SETTINGS.max_workers + 4)
    metrics.serve(SETTINGS.metrics_port)
    logger.info(f"Serving image {SETTINGS.serving_image}; metrics source "
                f"{SETTINGS.prometheus_url or 'pod scraping'}")
