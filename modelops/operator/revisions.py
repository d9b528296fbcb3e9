"""Revision records and the history log of a Model's status (pure).

`status.revisions` holds one record per live revision: everything needed to rebuild its
Deployment (`ModelSpec.pod_record`) plus its phase (`PHASES`) and the few timestamps the planner
needs (when it changed, first served, started its bake, was promoted) and its rollback target
(`predecessor`). The planner decides from these records only. `status.history` is an
append-only log of phase changes that nothing reads to decide, so trimming it to
`HISTORY_LIMIT` entries never changes behaviour. Also here: `RevisionState` (what the cluster
shows for one revision's Deployment) and the timestamp helpers.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Mapping

from modelops.operator.spec import ModelSpec

STARTING, SERVING, BAKING, PROMOTED = "Starting", "Serving", "Baking", "Promoted"
ROLLED_BACK, FAILED, RETIRED = "RolledBack", "Failed", "Retired"
SHADOWING = "Shadowing"              # ready, gets copies of live requests, answers no one
CANARY = "Canary"                    # ready, answers a step's share of the users' requests
PHASES = (STARTING, SHADOWING, CANARY, SERVING, BAKING, PROMOTED, ROLLED_BACK, FAILED, RETIRED)
NOT_YET_SERVING = (STARTING, SHADOWING, CANARY)  # a newer desired revision retires these
BAD = (ROLLED_BACK, FAILED)          # judged bad: blocked until the revision changes or a retry
ON_PROBATION = (BAKING, SERVING)     # serving, not promoted: automatic rollback is armed
HISTORY_LIMIT = 20


@dataclass(frozen=True)
class RevisionState:
    """What the cluster shows for one revision's Deployment."""
    replicas: int = 0
    ready: int = 0
    updated: bool = True
    deadline_exceeded: bool = False
    failure: str = ""  # "<Reason>: message" from a serving container's termination message

    @property
    def available(self) -> bool:
        return self.updated and self.replicas > 0 and self.ready >= self.replicas


def iso(t: float) -> str:
    return datetime.fromtimestamp(t, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_iso(text: str | None) -> float | None:
    if not text:
        return None
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=timezone.utc).timestamp()


def new_record(spec: ModelSpec, now: float) -> dict[str, Any]:
    """The record of a revision the spec asks for, before its pods exist."""
    return {"revision": spec.revision, **spec.pod_record(), "phase": STARTING,
            "reason": "Applied", "message": "", "changedAt": iso(now), "servedAt": None,
            "bakeStartedAt": None, "promotedAt": None, "judgedWindows": 0,
            "predecessor": None, "retryToken": None, "replicas": 0}


def history_entry(record: Mapping[str, Any], now: float,
                  verdict: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """One phase change; with the numbers of the latest judged window about the revision
    (its error rate, and its quality from feedback), when there is one."""
    entry = {"time": iso(now), "revision": record["revision"], "version": record["version"],
             "sha256": record.get("sha256", ""), "phase": record["phase"],
             "reason": record.get("reason", ""), "message": record.get("message", "")}
    for key in ("errorRate", "requests", "quality"):
        if (verdict or {}).get(key) is not None:
            entry[key] = verdict[key]
    return entry


def append_history(history: list[dict], entry: dict) -> None:
    """Append one entry and keep the newest HISTORY_LIMIT (entries are never edited)."""
    history.append(entry)
    del history[:-HISTORY_LIMIT]


def served(record: Mapping[str, Any] | None) -> bool:
    return bool(record and record.get("servedAt"))


def usable_target(record: Mapping[str, Any] | None) -> bool:
    """A revision that served and was not judged bad: a valid rollback target."""
    return served(record) and record["phase"] not in BAD


def whole(old: Mapping[str, Any] | None, new: dict[str, Any]) -> dict[str, Any]:
    """`new` with an explicit None for each key only `old` had, so a JSON merge patch
    replaces the object instead of merging stale keys into it."""
    return {**{k: None for k in (old or {}) if k not in new}, **new}
