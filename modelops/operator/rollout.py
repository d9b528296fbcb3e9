"""The Model's rollout and rollback state machine (pure).

`plan_model` takes what the user wants (the spec), what the operator remembers (the status it
wrote earlier), what the cluster shows (one `RevisionState` per version's Deployment) and the
latest analysis `Decision`, and returns a `Plan`: which Deployments to keep at how many
replicas, which revision the Service selects, the new status and the Events to post. It never
touches the spec: a rollback only moves the Service, and a version rolled back at generation G is
not retried while the generation is G (unless the retry annotation changes).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Mapping

from modelops import contract
from modelops.operator.analysis import Decision
from modelops.operator.conditions import model_conditions
from modelops.operator.spec import Artifact, ModelSpec

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


@dataclass(frozen=True)
class PlanInput:
    name: str
    spec: ModelSpec
    generation: int
    status: Mapping[str, Any]
    observed: Mapping[str, RevisionState]
    now: float
    annotations: Mapping[str, str] = field(default_factory=dict)
    decision: Decision | None = None


@dataclass
class Plan:
    deployments: dict[str, tuple[ModelSpec, int]]  # revision -> (spec at that version, replicas)
    delete: list[str]
    service_revision: str
    service_version: str
    status: dict[str, Any]
    events: list[tuple[str, str, str]]  # (type, reason, message)


def iso(t: float) -> str:
    return datetime.fromtimestamp(t, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_iso(text: str | None) -> float | None:
    if not text:
        return None
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=timezone.utc).timestamp()


class _Machine:
    """One planning pass; methods read and update `self.status` and `self.events`."""

    def __init__(self, inp: PlanInput):
        self.inp, self.spec, self.now = inp, inp.spec, inp.now
        self.status: dict[str, Any] = copy.deepcopy(dict(inp.status))
        self.status.pop("conditions", None)
        self.history: list[dict] = self.status.setdefault("history", [])
        self.events: list[tuple[str, str, str]] = []
        self.outcome: tuple[str, str, str] = ("", "", "")  # (state, reason, message) for conditions
        self.manual_target: str | None = None  # a manual rollback waiting for its pods

    # --- helpers -----------------------------------------------------------------------------
    def event(self, type_: str, reason: str, message: str) -> None:
        self.events.append((type_, reason, message))

    def entry(self, revision: str) -> dict | None:
        return next((h for h in reversed(self.history) if h.get("revision") == revision), None)

    def spec_at(self, revision: str) -> ModelSpec:
        if revision == self.spec.revision:
            return self.spec
        h = self.entry(revision) or {}
        artifact = Artifact(uri=h.get("uri", self.spec.artifact.uri), sha256=h.get("sha256", ""),
                            format=h.get("format", ""))
        return self.spec.at_version(h.get("version", "?"), artifact)

    def start_entry(self, outcome: str, reason: str = "") -> dict:
        a = self.spec.artifact
        h = {"version": self.spec.version, "revision": self.spec.revision, "sha256": a.sha256,
             "uri": a.uri, "format": a.format, "generation": self.inp.generation,
             "startedAt": iso(self.now), "outcome": outcome, "reason": reason}
        self.history.append(h)
        del self.history[:-HISTORY_LIMIT]
        return h

    def end_entry(self, revision: str, outcome: str, reason: str) -> None:
        h = self.entry(revision)
        if h is not None:
            h.update(outcome=outcome, reason=reason, endedAt=iso(self.now))

    def serve(self, revision: str) -> None:
        self.status["servingRevision"] = revision
        self.status["servingVersion"] = self.spec_at(revision).version
        self.status["servingSince"] = iso(self.now)

    def observed(self, revision: str | None) -> RevisionState:
        return self.inp.observed.get(revision or "", RevisionState())

    def blocked(self, revision: str) -> bool:
        """The revision was rolled back at this generation and no retry was asked for."""
        record = self.status.get("rollback") or {}
        return (record.get("fromRevision") == revision
                and record.get("generation") == self.inp.generation
                and self.inp.annotations.get(contract.ANNOTATION_RETRY, "")
                == record.get("retryToken", ""))

    # --- the passes ---------------------------------------------------------------------------
    def run(self) -> Plan:
        self.status["desiredVersion"] = self.spec.version
        if self.spec.suspend:
            self.outcome = ("Suspended", "Suspended",
                            "spec.suspend is true: the operator takes no action")
            return self.plan(touch=False)
        target = self.spec.revision
        requested = self.inp.annotations.get(contract.ANNOTATION_ROLLBACK_TO, "")
        if requested and requested != (self.status.get("rollback") or {}).get("requested"):
            self.manual_rollback(requested)
        if not self.status.get("servingRevision"):
            self.start_entry("RollingOut")
            self.serve(target)
            self.status["servingSince"] = None
            self.event("Normal", "RollingOut", f"Deploying first version {self.spec.version}")
        if target != self.status["servingRevision"]:
            self.advance_rollout(target)
        elif (self.status.get("rollout") or {}).get("revision"):
            # the spec went back to the serving version before the new one came up
            self.end_entry(self.status["rollout"]["revision"], "Superseded", "RolloutCancelled")
            self.status["rollout"] = None
            self.event("Normal", "RolloutCancelled",
                       f"Version {self.spec.version} is serving again; the rollout was cancelled")
        self.observe_serving()
        return self.plan(touch=True)

    def advance_rollout(self, target: str) -> None:
        st, version = self.status, self.spec.version
        if self.blocked(target):
            record = st["rollback"]
            self.outcome = ("Stalled", "RolledBack", (
                f"version {version} was rolled back to {record.get('toVersion')}: "
                f"{record.get('message') or record.get('reason')}; apply a new version or set "
                f"the {contract.ANNOTATION_RETRY} annotation to retry"))
            return
        if target == st.get("lastGoodRevision"):
            # a revert to the last good version: it is warm and proven, promote without a bake
            self.supersede(st["servingRevision"])
            if (st.get("rollout") or {}).get("revision"):
                self.end_entry(st["rollout"]["revision"], "Superseded", "ReplacedByNewerVersion")
            st["rollout"] = None
            self.start_entry("Promoted", "RevertedToLastGood")
            self.serve(target)
            self.event("Normal", "Promoted",
                       f"Version {version} is the last good version: serving it without a bake")
            return
        rollout = st.get("rollout") or {}
        if rollout.get("revision") != target:
            if rollout.get("revision"):
                self.end_entry(rollout["revision"], "Superseded", "ReplacedByNewerVersion")
            rollout = {"revision": target, "version": version, "startedAt": iso(self.now)}
            st["rollout"] = rollout
            self.start_entry("RollingOut")
            self.event("Normal", "RollingOut", f"Rolling out version {version} beside "
                       f"version {st.get('servingVersion')}")
        self.progress_rollout(target, parse_iso(rollout["startedAt"]) or self.now)

    def progress_rollout(self, target: str, started: float) -> None:
        st, version, state = self.status, self.spec.version, self.observed(target)
        entry = self.entry(target) or {}
        if state.available:
            previous = st["servingRevision"]
            self.supersede(previous)
            entry["outcome"] = "Serving"
            self.serve(target)
            st["rollout"] = None
            self.event("Normal", "RolledOut", f"Version {version} is serving; version "
                       f"{self.spec_at(previous).version} stays warm")
            return
        failure = self.failure_of(target, state, started)
        if failure:
            reason, message = failure
            if entry.get("outcome") != "Failed":
                self.end_entry(target, "Failed", reason)
                self.event("Warning", reason, f"Version {version} failed: {message}")
            self.outcome = ("Stalled", reason, f"version {version} failed: {message}; version "
                            f"{st.get('servingVersion')} keeps serving")
        else:
            self.outcome = ("Progressing", "RollingOut", f"waiting for version {version}: "
                            f"{state.ready}/{self.spec.replicas} pods ready")

    def failure_of(self, revision: str, state: RevisionState,
                   started: float) -> tuple[str, str] | None:
        if state.failure:
            reason, _, message = state.failure.partition(": ")
            return (reason if reason.isidentifier() else "LoadFailed"), (message or reason)
        deadline = self.spec.rollback.progress_deadline_seconds
        if state.deadline_exceeded or self.now - started > deadline:
            return "ProgressDeadlineExceeded", f"pods not ready within {deadline}s"
        return None

    def supersede(self, revision: str | None) -> None:
        """The serving revision leaves service; a version still baking is marked Superseded."""
        if revision and revision != self.status.get("lastGoodRevision"):
            h = self.entry(revision)
            if h and h.get("outcome") in ("Serving", "RollingOut"):
                self.end_entry(revision, "Superseded", "ReplacedByNewerVersion")

    def observe_serving(self) -> None:
        st = self.status
        serving, target = st["servingRevision"], self.spec.revision
        state = self.observed(serving)
        if not state.available:
            if serving == target and not self.outcome[0]:
                self.observe_first_start(serving, state)
            return
        if not st.get("servingSince"):
            st["servingSince"] = iso(self.now)
            (self.entry(serving) or {})["outcome"] = "Serving"
            self.event("Normal", "RolledOut", f"Version {self.spec_at(serving).version} is serving")
        if serving == st.get("lastGoodRevision"):
            self.observe_promoted()
        else:
            self.observe_baking(serving)

    def observe_first_start(self, serving: str, state: RevisionState) -> None:
        started = parse_iso((self.entry(serving) or {}).get("startedAt")) or self.now
        failure = self.failure_of(serving, state, started)
        version = self.spec.version
        if failure is None:
            self.outcome = ("Progressing", "RollingOut", f"waiting for version {version}: "
                            f"{state.ready}/{self.spec.replicas} pods ready")
            return
        reason, message = failure
        if (self.entry(serving) or {}).get("outcome") != "Failed":
            self.end_entry(serving, "Failed", reason)
            self.event("Warning", reason, f"Version {version} failed: {message}")
        self.outcome = ("Stalled", reason, f"version {version} failed: {message}")

    def observe_baking(self, serving: str) -> None:
        st, policy, decision = self.status, self.spec.rollback, self.inp.decision
        version = self.spec_at(serving).version
        if decision is not None and decision.rollback and policy.enabled:
            if not st.get("lastGoodRevision"):
                self.outcome = ("Degraded", "NoPreviousVersion", f"{decision.message}; there is "
                                "no earlier good version to roll back to")
                return
            if not policy.dry_run:
                self.roll_back(decision)
                return
            self.event("Warning", "WouldRollBack", f"Dry run: would roll back version {version} "
                       f"to {st.get('lastGoodVersion')}: {decision.message}")
        since = parse_iso(st.get("servingSince")) or self.now
        if self.now - since >= policy.bake_window_seconds:
            st["lastGoodRevision"], st["lastGoodVersion"] = serving, version
            h = self.entry(serving)
            if h is not None:
                h.update(outcome="Promoted", reason="BakeWindowPassed")
            self.event("Normal", "Promoted", f"Version {version} passed its bake window and is "
                       "now the last good version")
            self.observe_promoted()
        else:
            left = int(policy.bake_window_seconds - (self.now - since))
            self.outcome = ("Baking", "Baking", f"version {version} is serving; automatic "
                            f"rollback stays armed for {left}s more")

    def observe_promoted(self) -> None:
        decision, version = self.inp.decision, self.status.get("servingVersion")
        if decision is not None and decision.result == "Failed":
            self.outcome = ("Degraded", decision.reason, f"version {version} is past its bake "
                            f"window (no automatic rollback): {decision.message}")
        elif self.spec.revision == self.status["servingRevision"]:
            self.outcome = ("Serving", "Serving", f"version {version} is serving")

    def manual_rollback(self, version: str) -> None:
        """`modelops rollback --to VERSION`: serve an earlier version that served before."""
        st = self.status
        entry = next((h for h in reversed(self.history) if h.get("version") == version
                      and h.get("outcome") in ("Promoted", "Serving", "Superseded")), None)
        serving = st.get("servingRevision")
        if entry is None or entry["revision"] == serving:
            reason = "nothing to do: it is serving" if entry else "it never served"
            st["rollback"] = {**(st.get("rollback") or {}), "requested": version}
            self.event("Warning" if entry is None else "Normal", "RollbackRequestIgnored",
                       f"Rollback to version {version} ignored: {reason}")
            return
        revision = entry["revision"]
        if not self.observed(revision).available:
            self.manual_target = revision  # scaled up by children(); switched when ready
            self.outcome = ("Progressing", "ManualRollback",
                            f"waiting for version {version}'s pods before rolling back to it")
            return
        from_version = self.spec_at(serving).version if serving else ""
        st["rollback"] = {
            "fromVersion": self.spec.version, "toVersion": version,
            "fromRevision": self.spec.revision, "toRevision": revision,
            "time": iso(self.now), "reason": "ManualRollback", "requested": version,
            "message": f"requested with the {contract.ANNOTATION_ROLLBACK_TO} annotation",
            "generation": self.inp.generation,
            "retryToken": self.inp.annotations.get(contract.ANNOTATION_RETRY, ""),
        }
        if serving and serving != revision:
            self.end_entry(serving, "RolledBack", "ManualRollback")
        st["rollout"] = None
        self.serve(revision)
        st["lastGoodRevision"], st["lastGoodVersion"] = revision, version
        self.event("Warning", "RolledBack", f"Rolled back version {from_version} to {version} "
                   f"as requested by the {contract.ANNOTATION_ROLLBACK_TO} annotation")

    def roll_back(self, decision: Decision) -> None:
        st, policy = self.status, self.spec.rollback
        serving, good = st["servingRevision"], st["lastGoodRevision"]
        from_version, to_version = self.spec_at(serving).version, st.get("lastGoodVersion")
        st["rollback"] = {
            "fromVersion": from_version, "toVersion": to_version, "fromRevision": serving,
            "toRevision": good, "time": iso(self.now), "reason": decision.reason,
            "errorRate": decision.error_rate, "threshold": policy.error_rate_threshold,
            "window": f"{int(policy.window_seconds)}s", "requests": round(decision.requests),
            "message": decision.message, "generation": self.inp.generation,
            "retryToken": self.inp.annotations.get(contract.ANNOTATION_RETRY, ""),
            "requested": (st.get("rollback") or {}).get("requested"),
        }
        self.end_entry(serving, "RolledBack", decision.reason)
        self.serve(good)
        self.event("Warning", "RolledBack", f"Rolled back version {from_version} to "
                   f"{to_version}: {decision.message}")
        self.outcome = ("Stalled", "RolledBack", f"version {from_version} was rolled back to "
                        f"{to_version}: {decision.message}")

    # --- the result ---------------------------------------------------------------------------
    def plan(self, *, touch: bool) -> Plan:
        st = self.status
        serving = st.get("servingRevision") or self.spec.revision
        deployments, delete = (self.children(serving) if touch else ({}, []))
        st["conditions"] = model_conditions(
            self.outcome, self.inp.decision, self.inp.status.get("conditions") or [],
            now=iso(self.now), generation=self.inp.generation)
        st["observedGeneration"] = self.inp.generation
        return Plan(deployments=deployments, delete=delete, service_revision=serving,
                    service_version=self.spec_at(serving).version, status=st,
                    events=self.events)

    def children(self, serving: str) -> tuple[dict[str, tuple[ModelSpec, int]], list[str]]:
        """Replicas per revision: serving, candidate and the warm last good version at full
        size; up to keepPrevious older promoted versions kept at zero; the rest deleted."""
        st, replicas, target = self.status, self.spec.replicas, self.spec.revision
        keep: dict[str, int] = {serving: replicas}
        if self.manual_target:
            keep[self.manual_target] = replicas
        good = st.get("lastGoodRevision")
        if good and good != serving:
            keep[good] = replicas
        if target not in keep:
            keep[target] = 0 if self.blocked(target) else replicas
        previous = [h["revision"] for h in reversed(self.history)
                    if h.get("outcome") == "Promoted" and h.get("revision") not in keep]
        for revision in dict.fromkeys(previous).keys():
            if len([r for r in keep if r not in (serving, target, good)]) >= \
                    self.spec.rollback.keep_previous:
                break
            keep[revision] = 0
        deployments = {rev: (self.spec_at(rev), n) for rev, n in keep.items()}
        delete = sorted(rev for rev in self.inp.observed if rev not in keep)
        return deployments, delete


def plan_model(inp: PlanInput) -> Plan:
    return _Machine(inp).run()
