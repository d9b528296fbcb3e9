"""Status writes shared by the Model and pipeline passes, and the child-error overlay.

`StatusWriter.write` sends the top-level diff conditional on the resourceVersion the pass
planned from (a stale plan gets `Conflict` and is dropped), and remembers which resourceVersion
its write replaced: the watch index can lag behind our own write, and a pass that starts from
exactly that replaced version (`stale`) would re-plan from a status we already overwrote, so it
waits for the watch instead. This is an equality test on opaque strings, never an ordering. A
write the API server found to change nothing (it returns the same resourceVersion, e.g. a null
it drops) brings no watch event, so it is not waited for.
`with_child_error` puts a child's refusal (`ChildRejected`, `ChildNameConflict`) in the
conditions the plan computed, so the status says why no progress happens (pure).
"""

from __future__ import annotations

import threading
from typing import Any, Mapping

from modelops.operator import kube
from modelops.operator.conditions import (FALSE, READY, RECONCILING, STALLED, TRUE, apply_all,
                                          get_condition)

CHILD_ERRORS: dict[str, tuple[str, str]] = {}
"""uid -> (reason, message) of the last child refusal, until an apply succeeds."""


class StatusWriter:
    def __init__(self) -> None:
        self._replaced: dict[str, str] = {}
        self._lock = threading.Lock()

    def stale(self, body: Mapping[str, Any]) -> bool:
        meta = body["metadata"]
        with self._lock:
            return self._replaced.get(meta["uid"]) == meta.get("resourceVersion")

    def write(self, plural: str, body: Mapping[str, Any], old: Mapping, new: Mapping) -> bool:
        """Write the diff of `old` to `new`; False when the object moved on (drop the pass)."""
        meta = body["metadata"]
        patch = kube.status_patch(old, new)
        if not patch:
            return True
        try:
            written = kube.patch_status(plural, meta["namespace"], meta["name"],
                                        meta["resourceVersion"], patch)
        except kube.Conflict:
            return False
        if written != meta["resourceVersion"]:  # the server stored no change: no watch event
            with self._lock:                     # comes, so there is nothing to wait for
                self._replaced[meta["uid"]] = meta["resourceVersion"]
        return True

    def forget(self, uid: str) -> None:
        with self._lock:
            self._replaced.pop(uid, None)
        CHILD_ERRORS.pop(uid, None)


STATUS = StatusWriter()


def with_child_error(status: dict, error: tuple[str, str] | None, previous: list, *,
                     now: str, generation: int) -> dict:
    """`status` with Ready=False and Stalled=True for `error` (reason, message), if any; a
    condition whose status equals the one in `previous` (the stored conditions) keeps its
    lastTransitionTime, so repeating the same refusal writes nothing."""
    if error is None:
        return status
    reason, message = error
    conditions = apply_all(status.get("conditions") or [], {
        READY: (FALSE, reason, message), STALLED: (TRUE, reason, message), RECONCILING: None},
        now=now, generation=generation)
    for condition in conditions:
        before = get_condition(previous or [], condition["type"])
        if before and before.get("status") == condition["status"]:
            condition["lastTransitionTime"] = before.get("lastTransitionTime", now)
    status["conditions"] = conditions
    return status


def apply_reporting_refusals(body: Mapping[str, Any], apply, queue, logger, what: str) -> None:
    """Run `apply()`; a refusal or a name conflict becomes the owner's child error (shown in
    status on the next pass, which `queue` is asked for when the error changes); API errors
    a retry can fix are logged and re-raised for the queue to retry."""
    from kubernetes.client.rest import ApiException

    from modelops.operator.children import ChildConflict, ChildRejected

    meta = body["metadata"]
    try:
        apply()
        error = None
    except (ChildConflict, ChildRejected) as refused:
        if getattr(refused, "transient", False):
            logger.info(str(refused))
            return
        reason = "ChildNameConflict" if isinstance(refused, ChildConflict) else "ChildRejected"
        error = (reason, str(refused))
    except ApiException as failure:  # the queue retries; nothing for the user to do
        logger.warning(f"{what} not reconciled yet: {failure.status} {failure.reason}: "
                       f"{kube.error_message(failure)}")
        raise
    if CHILD_ERRORS.get(meta["uid"]) != error:
        if error:
            logger.warning(f"{error[0]}: {error[1]}")
            CHILD_ERRORS[meta["uid"]] = error
        else:
            CHILD_ERRORS.pop(meta["uid"], None)
        queue.add((meta["namespace"], meta["name"]))  # show (or clear) it in status
