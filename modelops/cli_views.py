"""What the `modelops` command shows and what it accepts, as pure functions on Model dicts.

Tables in kubectl's layout (upper-case headers, columns padded, three spaces apart), kubectl's
AGE format, and the checks the command runs before it writes an annotation: names, namespaces
and the rollback target. Pure: no API calls, no printing; bad input raises `CliError`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from datetime import datetime

NONE = "-"
MODEL_COLUMNS = (
    "NAMESPACE", "NAME", "READY", "SERVING", "DESIRED", "ERROR-RATE", "DECISION", "AGE",
)
HISTORY_COLUMNS = ("VERSION", "SHA256", "STARTED", "ENDED", "OUTCOME", "REASON", "ERROR-RATE",
                   "QUALITY")
OUTCOME_FAILED = "Failed"  # a version that never served (artifact or load failure)

_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
_DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$")


class CliError(Exception):
    """A problem the user can fix; main() prints it as one line and exits non-zero."""


def check_name(name: str) -> str:
    """A Model name must be a DNS-1123 subdomain, as the API server requires."""
    if not _DNS_SUBDOMAIN.match(name):
        raise CliError(
            f"invalid model name {name!r}: use lower-case letters, digits, '-' and '.', "
            "starting and ending with a letter or digit"
        )
    return name


def check_namespace(namespace: str) -> str:
    """A namespace must be a DNS-1123 label."""
    if not _DNS_LABEL.match(namespace):
        raise CliError(
            f"invalid namespace {namespace!r}: use at most 63 lower-case letters, digits and '-'"
        )
    return namespace


def _status(model: Mapping) -> Mapping:
    return model.get("status") or {}


def ref(model: Mapping) -> str:
    """namespace/name, for messages."""
    meta = model.get("metadata") or {}
    return f"{meta.get('namespace', '')}/{meta.get('name', '')}"


def check_rollback_target(model: Mapping, version: str) -> None:
    """Refuse a rollback target that is not in status.history or that never served."""
    if not version.strip():
        raise CliError("--to needs a version, got an empty string")
    history = _status(model).get("history") or []
    records = _status(model).get("revisions")
    if records is not None and any(str(r.get("version")) == version for r in records):
        if not any(str(r.get("version")) == version and r.get("servedAt")
                   and r.get("phase") not in ("RolledBack", "Failed") for r in records):
            raise CliError(f"cannot roll back {ref(model)} to version {version!r}: no kept "
                           "revision of it served without being rolled back or failing")
        return
    outcomes = [entry.get("phase") or entry.get("outcome") for entry in history
                if str(entry.get("version")) == version]
    if not outcomes:
        known = ", ".join(dict.fromkeys(str(entry.get("version")) for entry in history))
        known_text = f"known versions: {known}" if known else "it has no history yet"
        raise CliError(
            f"cannot roll back {ref(model)} to version {version!r}: it is not in "
            f"status.history ({known_text})"
        )
    if all(outcome == OUTCOME_FAILED for outcome in outcomes):
        raise CliError(
            f"cannot roll back {ref(model)} to version {version!r}: it never served "
            "(every history entry for it is Failed)"
        )


def human_age(seconds: float) -> str:
    """kubectl's AGE format (apimachinery duration.HumanDuration): 45s, 5m3s, 90m, 5h2m, 3d4h."""
    total = int(seconds)
    if total < 0:
        return "0s"
    if total < 120:
        return f"{total}s"
    minutes, hours = total // 60, total // 3600
    if minutes < 10:
        return f"{minutes}m" + (f"{total % 60}s" if total % 60 else "")
    if minutes < 180:
        return f"{minutes}m"
    if hours < 8:
        return f"{hours}h" + (f"{minutes % 60}m" if minutes % 60 else "")
    if hours < 48:
        return f"{hours}h"
    if hours < 24 * 8:
        return f"{hours // 24}d" + (f"{hours % 24}h" if hours % 24 else "")
    if hours < 24 * 365 * 2:
        return f"{hours // 24}d"
    if hours < 24 * 365 * 8:
        days = (hours // 24) % 365
        return f"{hours // 24 // 365}y" + (f"{days}d" if days else "")
    return f"{hours // 24 // 365}y"


def age(timestamp: str | None, now: datetime) -> str:
    """AGE of an RFC 3339 timestamp ("2026-08-20T10:04:11Z") at `now` (timezone-aware)."""
    if not timestamp:
        return NONE
    try:
        then = datetime.fromisoformat(timestamp.replace("Z", "+00:00"))
    except ValueError:
        return NONE
    return human_age((now - then).total_seconds())


def percent(value: object) -> str:
    """0.072 -> "7.20%"; anything that is not a number -> "-"."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return NONE
    return f"{value * 100:.2f}%"


def _cell(value: object) -> str:
    return NONE if value is None or value == "" else str(value)


def ready_status(model: Mapping) -> str:
    """The Ready condition's status (True/False/Unknown), or "-" before the first reconcile."""
    for condition in _status(model).get("conditions") or []:
        if condition.get("type") == "Ready":
            return _cell(condition.get("status"))
    return NONE


def model_row(model: Mapping, now: datetime) -> list[str]:
    """One `modelops list` row, in MODEL_COLUMNS order."""
    meta, status = model.get("metadata") or {}, _status(model)
    analysis = status.get("analysis") or {}
    desired = status.get("desiredVersion") or (model.get("spec") or {}).get("version")
    return [
        _cell(meta.get("namespace")),
        _cell(meta.get("name")),
        ready_status(model),
        _cell(status.get("servingVersion")),
        _cell(desired),
        percent(analysis.get("errorRate")),
        _cell(analysis.get("result")),
        age(meta.get("creationTimestamp"), now),
    ]


def render_table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """Left-aligned columns, three spaces apart, like kubectl get."""
    widths = [max(len(str(cell)) for cell in column) for column in zip(headers, *rows, strict=True)]
    lines = [
        "   ".join(str(cell).ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        for row in (headers, *rows)
    ]
    return "\n".join(lines)


def models_table(models: Sequence[Mapping], now: datetime) -> str:
    """The `modelops list` table, sorted by namespace then name."""
    rows = sorted((model_row(model, now) for model in models), key=lambda row: (row[0], row[1]))
    return render_table(MODEL_COLUMNS, rows)


def history_table(model: Mapping) -> str:
    """status.history as a table, oldest first as the operator records it."""
    rows = [
        [
            _cell(entry.get("version")),
            _cell((entry.get("sha256") or "")[:12]),
            _cell(entry.get("time") or entry.get("startedAt")),
            _cell(entry.get("endedAt")),
            _cell(entry.get("phase") or entry.get("outcome")),
            _cell(entry.get("reason")),
            percent(entry.get("errorRate")),
            quality_cell(entry.get("quality")),
        ]
        for entry in _status(model).get("history") or []
    ]
    return render_table(HISTORY_COLUMNS, rows)


def quality_cell(quality: Mapping | None) -> str:
    """`acc=93.1%/412` (classifier) or `rmse=0.412/96` (regressor): the measure and the rows
    scored in the window it comes from; `-` without feedback."""
    if not quality or not quality.get("scoredRows"):
        return NONE
    rows = quality["scoredRows"]
    if quality.get("accuracy") is not None:
        return f"acc={percent(quality['accuracy'])}/{rows}"
    if quality.get("rmse") is not None:
        return f"rmse={quality['rmse']:.4g}/{rows}"
    return NONE


def versions_line(model: Mapping) -> str:
    """One line: which version is desired, serving and last known good."""
    status = _status(model)
    desired = status.get("desiredVersion") or (model.get("spec") or {}).get("version")
    return (
        f"Model {ref(model)}: desired {_cell(desired)}, serving "
        f"{_cell(status.get('servingVersion'))}, last good {_cell(status.get('lastGoodVersion'))}"
    )


def rollback_line(model: Mapping) -> str:
    """status.rollback in one sentence, or a note that there is none."""
    rollback = _status(model).get("rollback")
    if not rollback:
        return "Rollback: none"
    text = (
        f"Rollback: {_cell(rollback.get('fromVersion'))} -> {_cell(rollback.get('toVersion'))}"
        f" at {_cell(rollback.get('time'))}, reason {_cell(rollback.get('reason'))}"
    )
    if rollback.get("errorRate") is not None:
        text += f": error rate {percent(rollback.get('errorRate'))}"
        if rollback.get("threshold") is not None:
            text += f" > {percent(rollback.get('threshold'))}"
        if rollback.get("window"):
            text += f" over {rollback['window']}"
        if rollback.get("requests") is not None:
            text += f" ({rollback['requests']} requests)"
    return text


def candidate_version(model: dict, verb: str) -> str:
    """The version in shadow or canary (status.revisions phase Shadowing or Canary); CliError
    when there is none."""
    records = (model.get("status") or {}).get("revisions") or []
    version = next((r.get("version") for r in records
                    if r.get("phase") in ("Shadowing", "Canary")), None)
    if version is None:
        raise CliError(f"cannot {verb} {ref(model)}: no version is in shadow or canary "
                       f"(spec.rollout holds a new version there until it passes)")
    return version


def rollout_line(model: Mapping) -> str | None:
    """The version in shadow or canary and its evidence so far; None when there is none."""
    for rec in _status(model).get("revisions") or []:
        if rec.get("phase") == "Shadowing":
            shadow = rec.get("shadow") or {}
            return (f"Shadow: version {rec.get('version')}, {shadow.get('rows', 0)} rows "
                    f"compared, disagreement {percent(shadow.get('disagreement'))}, candidate "
                    f"errors {percent(shadow.get('errorRate'))}")
        if rec.get("phase") == "Canary":
            canary = rec.get("canary") or {}
            return (f"Canary: version {rec.get('version')}, step {canary.get('step', '?')} of "
                    f"{canary.get('steps', '?')} at {canary.get('weight', 0):g}%, "
                    f"{canary.get('requests', 0)} answers, {canary.get('failed', 0)} failed")
    return None
