"""MLflow aliases: resolve `models:/<name>@<alias>` to a version once, and report when it moves.

An alias is a moving pointer; serving it directly would roll out whatever someone points it at,
unseen. So the operator resolves the alias, records the version in status.mlflow, and the pods get
the pinned `models:/<name>/<version>`. When a later resolution finds the alias elsewhere,
`decide` reports it (an Event and the AliasMoved condition) and spec.artifact.mlflow.aliasRollout
decides: Manual (default) keeps serving the recorded version, Auto rolls out the new one (as a
normal rollout with its bake window and rollback). The annotation modelops.io/mlflow-alias-rollout
(Auto|Manual) overrides the field. `decide`, `pinned_uri` are pure; `resolve_alias` is the one
API call (the tracking server; it uses the operator's own MLFLOW_TRACKING_TOKEN, never a Secret).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field, replace

from modelops import contract as c
from modelops.operator.spec import ModelSpec

POLICIES = ("Manual", "Auto")
REASON_RESOLVED = "MlflowAliasResolved"
REASON_MOVED = "MlflowAliasMoved"
CONDITION_MOVED = "AliasMoved"


@dataclass(frozen=True)
class AliasDecision:
    """What to serve and what to say after resolving an alias."""

    serve_version: str
    """The registry version the pods get (models:/<name>/<serve_version>)."""
    status: dict
    """Patch for status.mlflow: {alias, version (served), aliasVersion (the alias now)}."""
    event: tuple[str, str, str] | None = None
    """(type Normal|Warning, reason, message) to emit, or None."""
    condition: dict | None = field(default=None)
    """The AliasMoved condition (type, status, reason, message), or None when unchanged."""


def alias_of(uri: str) -> tuple[str, str] | None:
    """(name, alias) of a models:/<name>@<alias> URI, else None."""
    if not uri.startswith("models:/") or "@" not in uri:
        return None
    name, alias = uri[len("models:/"):].split("@", 1)
    return (name, alias) if name and alias and "/" not in name else None


def pinned_uri(uri: str, version: str) -> str:
    """models:/<name>@<alias> -> models:/<name>/<version>; other URIs unchanged."""
    found = alias_of(uri)
    return f"models:/{found[0]}/{version}" if found and version else uri


def pinned_spec(spec: ModelSpec, version: str) -> ModelSpec:
    """The spec the builders get: its alias URI pinned to `version` (a new revision per version)."""
    return replace(spec, artifact=replace(spec.artifact, uri=pinned_uri(spec.artifact.uri, version)))


def policy_of(field_value: str, annotations: Mapping[str, str]) -> str:
    chosen = annotations.get(c.ANNOTATION_MLFLOW_ALIAS_ROLLOUT) or field_value or "Manual"
    return chosen if chosen in POLICIES else "Manual"


def decide(uri: str, recorded: Mapping[str, str] | None, current: str, policy: str) -> AliasDecision:
    """Pure: the alias in `uri` now points at `current`; `recorded` is status.mlflow."""
    name, alias = alias_of(uri) or ("", "")
    before = dict(recorded or {})
    served = before.get("version", "") if before.get("alias") == f"{name}@{alias}" else ""
    status = {"alias": f"{name}@{alias}", "version": served or current, "aliasVersion": current}
    if not served:
        return AliasDecision(current, status, ("Normal", REASON_RESOLVED,
                             f"models:/{name}@{alias} resolved to version {current}"),
                             _condition("False", "AliasAtServedVersion", f"{alias} is version {current}"))
    if served == current:
        return AliasDecision(served, status, None, _condition(
            "False", "AliasAtServedVersion", f"{alias} is version {current}")
            if before.get("aliasVersion") not in ("", None, current) else None)
    if policy == "Auto":
        status["version"] = current
        return AliasDecision(current, status, ("Normal", REASON_MOVED,
                             f"models:/{name}@{alias} moved from version {served} to {current}; "
                             "rolling out (aliasRollout: Auto)"),
                             _condition("False", "RollingOut", f"{alias} moved to version {current}"))
    if before.get("aliasVersion") == current:  # already reported
        return AliasDecision(served, status)
    return AliasDecision(served, status, ("Warning", REASON_MOVED,
                         f"models:/{name}@{alias} moved from version {served} to {current}; "
                         f"still serving {served} (aliasRollout: Manual; set Auto, or set "
                         "spec.artifact.sha256 to the new version's model file)"),
                         _condition("True", REASON_MOVED,
                                    f"{alias} is version {current}, serving {served}"))


def _condition(status: str, reason: str, message: str) -> dict:
    return {"type": CONDITION_MOVED, "status": status, "reason": reason, "message": message}


def resolve_alias(uri: str, *, tracking_uri: str = "", timeout: float = 10.0, session=None) -> str:
    """API call: the version the alias in `uri` points at now (StartupFailure on errors, whose
    `.reason` is ArtifactNotFound / AccessDenied / DownloadFailed and `.message` the server's)."""
    from modelops.serving.sources.mlflow import ModelRef
    from modelops.serving.sources.mlflow_client import TrackingClient

    environ = dict(os.environ)
    if tracking_uri:
        environ[c.ENV_MLFLOW_TRACKING_URI] = tracking_uri
    client = TrackingClient.from_env(environ, timeout=timeout, session=session)
    return client.resolve_version(ModelRef.parse(uri))
