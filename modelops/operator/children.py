"""Writing children safely: the ownership rule, no request on an idle pass, errors as reasons.

`Applier.apply` server-side applies a child only after checking that the live object (from the
watch index, or read once when the index has none) is controlled by this owner's uid; an object
with the same name that something else controls, or that nobody controls, is never touched:
`ChildConflict` names it (controller-runtime's `AlreadyOwnedError` rule). It remembers, per
child, a digest of what it applied and the resourceVersions before and after, so a pass whose
desired object and live resourceVersion are unchanged sends nothing at all (the API server's
canonical forms of quantities never enter the comparison). For kinds with a generation
(Deployments) the same object (uid) at the generation our apply left also counts as unchanged:
its controller's status writes move the resourceVersion, not the spec. `forget` (the child
was deleted) wins over an apply whose response was still in flight: that record is not kept,
or the next pass would trust a write the deletion undid. `rejection` turns an API error into
`ChildRejected` with the API server's message when retrying cannot help (admission, quota, 422).
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
from dataclasses import dataclass
from typing import Any, Callable, Mapping

from kubernetes.client.rest import ApiException

from modelops import contract
from modelops.operator import kube
from modelops.operator.builders import deployment_name

TRUST_SECONDS = 30.0
"""How long our own write stands in for an index that has not seen the child yet."""
_RETRYABLE = {409, 429}


class ChildConflict(Exception):
    """A child's name is taken by an object this owner does not control (reason
    ChildNameConflict). `transient` when it is our own previous incarnation's, being removed."""

    def __init__(self, message: str, transient: bool = False):
        super().__init__(message)
        self.transient = transient


class ChildRejected(Exception):
    """The API server refused a child for a reason a retry cannot fix (reason ChildRejected)."""


@dataclass
class _Record:
    digest: str
    versions: frozenset
    at: float
    generation: tuple | None = None  # (uid, generation) our apply left, for kinds with one

    def unchanged(self, live: Mapping[str, Any]) -> bool:
        """`live` is the object as we left it (or only its status moved since)."""
        if live.get("resourceVersion") in self.versions:
            return True
        return self.generation is not None and \
            (live.get("uid"), live.get("generation")) == self.generation


def digest(obj: Mapping[str, Any]) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, separators=(",", ":"))
                          .encode()).hexdigest()


def check_owner(kind: str, name: str, live: Mapping[str, Any], owner: Mapping[str, Any]) -> None:
    """Raise ChildConflict unless `live` (kube.meta_of) is controlled by `owner` (a body)."""
    meta = owner["metadata"]
    controller = live.get("controller")
    if controller and controller.get("uid") == meta["uid"]:
        return
    if controller and controller.get("kind") == owner.get("kind") \
            and controller.get("name") == meta["name"] or live.get("deleting"):
        raise ChildConflict(f"{kind} {name} still belongs to an earlier {owner.get('kind')} "
                            f"{meta['name']}; waiting for it to be deleted", transient=True)
    holder = (f"{controller.get('kind')} {controller.get('name')}" if controller
              else "no controller")
    raise ChildConflict(f"{kind} {name} already exists and is controlled by {holder}, not by "
                        f"this {owner.get('kind')}; it was left untouched: rename or delete it")


def rejection(kind: str, name: str, error: ApiException) -> ChildRejected | None:
    """ChildRejected for a refusal that needs a user (4xx but conflict/throttling), else None."""
    if error.status is None or not 400 <= error.status < 500 or error.status in _RETRYABLE:
        return None
    return ChildRejected(f"the API server refused {kind} {name}: {kube.error_message(error)}")


def changed(live: Mapping[str, Any], stored: Mapping[str, Any], record: _Record | None,
            wanted: str) -> bool:
    """Whether our apply changed the object: its generation moved (Deployments), or, for kinds
    without one, what we apply is new and the resourceVersion moved. (The live copy may be
    older than the object we applied to, so a moved resourceVersion alone proves nothing.)"""
    if live.get("generation") and stored.get("generation"):
        return live["generation"] != stored["generation"]
    return (record is None or record.digest != wanted) and \
        live.get("resourceVersion") != stored.get("resourceVersion")


class Applier:
    """Applies children of every owner; thread-safe (the queue runs one pass per owner)."""

    def __init__(self, clock: Callable[[], float] = time.monotonic):
        self._records: dict[tuple[str, str, str], _Record] = {}
        self._forgotten: dict[tuple[str, str], int] = {}  # (namespace, name) -> forget number
        self._forgets, self._in_flight = 0, 0
        self._lock = threading.Lock()
        self._clock = clock

    def apply(self, obj: dict, owner: Mapping[str, Any], live: Mapping[str, Any] | None
              ) -> str | None:
        """'created', 'updated' or None (nothing changed, or nothing sent)."""
        meta = obj["metadata"]
        key = (obj["kind"], meta["namespace"], meta["name"])
        wanted = digest(obj)
        with self._lock:
            record, started = self._records.get(key), self._forgets
        if record is not None and record.digest == wanted:
            if live is not None and record.unchanged(live):
                check_owner(key[0], key[2], live, owner)
                return None
            if live is None and self._clock() - record.at < TRUST_SECONDS:
                return None  # our own write, not in the index yet
        stored = None
        with self._lock:
            self._in_flight += 1
        try:
            live, stored = self._send(obj, key, owner, live)
        finally:
            with self._lock:
                self._in_flight -= 1
                if stored is not None and self._forgotten.get(key[1:], -1) <= started:
                    versions = frozenset({None if live is None else live.get("resourceVersion"),
                                          stored["resourceVersion"]})
                    generation = (stored["uid"], stored["generation"]) \
                        if stored.get("generation") else None
                    self._records[key] = _Record(wanted, versions, self._clock(), generation)
                if not self._in_flight:
                    self._forgotten.clear()  # a marker only matters to an apply in flight
        if live is None:
            return "created"
        return "updated" if changed(live, stored, record, wanted) else None

    @staticmethod
    def _send(obj: dict, key: tuple[str, str, str], owner: Mapping[str, Any],
              live: Mapping[str, Any] | None) -> tuple[Mapping[str, Any] | None, dict]:
        if live is None:
            live = kube.read_meta(key[0], key[2], key[1])
        if live is not None:
            check_owner(key[0], key[2], live, owner)
        try:
            return live, kube.apply(obj)
        except ApiException as error:
            refused = rejection(key[0], key[2], error)
            if refused is not None:
                raise refused from None
            raise

    def forget(self, namespace: str, names: set[str], prefix: str | None = None) -> None:
        """Drop records of one namespace's children named in `names` or starting with `prefix`."""
        with self._lock:
            self._forgets += 1
            if self._in_flight:
                self._forgotten.update({(namespace, name): self._forgets for name in names})
            for key in [k for k in self._records if k[1] == namespace and (
                    k[2] in names or (prefix is not None and k[2].startswith(prefix)))]:
                del self._records[key]


APPLIER = Applier()

APPLIED_REASON = "ChildrenApplied"


def applied_message(written: list[tuple[str, str, str]]) -> str | None:
    """One Event message for a pass's writes, (result, kind, name) each: "Created Service iris,
    Deployment iris-v1; updated Deployment iris-v0". One Event a pass, not one per child: with
    1000 new Models that is 1000 writes to the API server instead of 2000 (bench/scale.py)."""
    groups: dict[str, list[str]] = {}
    for result, kind, name in written:
        groups.setdefault(result, []).append(f"{kind} {name}")
    message = "; ".join(f"{result} {', '.join(children)}" for result, children in groups.items())
    return message[:1].upper() + message[1:] if message else None


Event = tuple[str, str, str]  # (type, reason, message)


def pass_events(planned: list[Event], written: list[tuple[str, str, str]]) -> list[Event]:
    """The Events of one pass: the plan's, with the children written told in the last one's
    message ("Rolling out v2 (revision b2). Created Deployment iris-b2"), or one
    `ChildrenApplied` Event when the plan has none. A new Model costs the API server one Event
    write, not two (bench/scale.py)."""
    message = applied_message(written)
    if not planned:
        return [("Normal", APPLIED_REASON, message)] if message else []
    if not message:
        return list(planned)
    type_, reason, last = planned[-1]
    return [*planned[:-1], (type_, reason, f"{last.rstrip('.')}. {message}")]


def owned_by(model: str) -> Callable[[Mapping[str, Any]], bool]:
    """Whether a pod summary's ReplicaSet is one of `model`'s own Deployments' (labels alone,
    which anyone may set, do not make a pod ours)."""
    return lambda pod: pod["owner"].startswith(deployment_name(model, pod["revision"]) + "-")


def role_changes(pods: list[Mapping[str, Any]], serving_revision: str, owns: Callable[[Mapping], bool],
                 shadow_candidate: str | None = None
                 ) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    """(before the Service switch, after it): (pod name, role) label writes so pods out of
    service are `standby` (they close keep-alive connections) and pods back in service are
    `serving`. A pod without the label serves normally, so the usual path writes nothing. The
    candidate in shadow is not standby: only the serving pods' senders reach it, and they keep
    their connections to it."""
    before, after = [], []
    for pod in pods:
        if pod.get("deleting") or not owns(pod):
            continue
        role = pod.get("role", "")
        if pod["revision"] in (serving_revision, shadow_candidate):
            if role == contract.ROLE_STANDBY:
                before.append((pod["name"], contract.ROLE_SERVING))
        elif role != contract.ROLE_STANDBY:
            after.append((pod["name"], contract.ROLE_STANDBY))
    return before, after
