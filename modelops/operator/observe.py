"""Turn cached child objects into what the planners need (pure).

Deployments become one `RevisionState` per revision; pods give readiness, scrape URLs and the
serving container's own failure reason (the one-line termination message the serving image
writes, e.g. `ChecksumMismatch: ...`), so a Model can say why a version cannot start.
"""

from __future__ import annotations

import re
from typing import Any, Iterable, Mapping

from modelops import contract
from modelops.operator.kube import meta_of as kube_meta
from modelops.operator.revisions import RevisionState

REASON_LINE = re.compile(r"^[A-Z][A-Za-z0-9]+: ")
# Waiting reasons that will not fix themselves without a user action.
STUCK_WAITING = {"ErrImagePull", "ImagePullBackOff", "InvalidImageName",
                 "CreateContainerConfigError", "CreateContainerError"}


def deployment_summary(body: Mapping[str, Any]) -> dict:
    """The part of a Deployment that the index keeps."""
    meta, spec, status = body.get("metadata", {}), body.get("spec", {}), body.get("status", {})
    conditions = status.get("conditions") or []
    progressing = next((c for c in conditions if c.get("type") == "Progressing"), {})
    return {
        "name": meta.get("name"),
        "revision": (meta.get("labels") or {}).get(contract.LABEL_REVISION, ""),
        "replicas": spec.get("replicas", 1),
        "ready": status.get("availableReplicas") or 0,
        "updated": (status.get("observedGeneration") or 0) >= (meta.get("generation") or 0)
        and (status.get("updatedReplicas") or 0) >= spec.get("replicas", 1),
        "deadline_exceeded": progressing.get("reason") == "ProgressDeadlineExceeded",
        "live": kube_meta(body),  # what the ownership and idle-pass checks need
    }


def pod_summary(body: Mapping[str, Any]) -> dict:
    meta, status = body.get("metadata", {}), body.get("status", {})
    ready = any(c.get("type") == "Ready" and c.get("status") == "True"
                for c in status.get("conditions") or [])
    return {
        "name": meta.get("name"),
        "revision": (meta.get("labels") or {}).get(contract.LABEL_REVISION, ""),
        "ip": status.get("podIP") or "",
        "ready": ready,
        "deleting": bool(meta.get("deletionTimestamp")),
        "failure": "" if ready else pod_failure(status),
        "role": (meta.get("labels") or {}).get(contract.LABEL_ROLE, ""),
        "owner": _replica_set(meta),
        "shadow": {k: v for k, v in (meta.get("annotations") or {}).items()
                   if k in SHADOW_ANNOTATIONS},
    }


SHADOW_ANNOTATIONS = (contract.ANNOTATION_SHADOW_URL, contract.ANNOTATION_SHADOW_VERSION,
                      contract.ANNOTATION_SHADOW_PERCENT, contract.ANNOTATION_SHADOW_TOLERANCE,
                      contract.ANNOTATION_CANARY_PERCENT, contract.ANNOTATION_CANARY_HASH_HEADER)


def _replica_set(meta: Mapping[str, Any]) -> str:
    """The pod's controlling ReplicaSet, "" when a ReplicaSet does not control it."""
    for ref in meta.get("ownerReferences") or []:
        if ref.get("controller") and ref.get("kind") == "ReplicaSet":
            return ref.get("name") or ""
    return ""


def pod_failure(status: Mapping[str, Any]) -> str:
    """'<Reason>: message' when a container of the pod failed in a way that needs a user."""
    statuses = [*(status.get("initContainerStatuses") or []),
                *(status.get("containerStatuses") or [])]
    for container in statuses:
        for state in (container.get("state") or {}, container.get("lastState") or {}):
            terminated = state.get("terminated")
            if terminated and terminated.get("exitCode", 0) != 0:
                reasoned = [line for line in (terminated.get("message") or "").splitlines()
                            if REASON_LINE.match(line)]
                if reasoned:
                    return reasoned[-1].strip()
                return (f"LoadFailed: container {container.get('name')} exited with code "
                        f"{terminated.get('exitCode')} ({terminated.get('reason', 'Error')})")
            waiting = state.get("waiting")
            if waiting and waiting.get("reason") in STUCK_WAITING:
                return f"{waiting['reason']}: {waiting.get('message', '').strip()}"
    return ""


def revision_states(deployments: Iterable[Mapping[str, Any]],
                    pods: Iterable[Mapping[str, Any]]) -> dict[str, RevisionState]:
    failures: dict[str, str] = {}
    for pod in pods:
        if pod["failure"] and not pod["deleting"]:
            failures.setdefault(pod["revision"], pod["failure"])
    return {
        d["revision"]: RevisionState(replicas=d["replicas"], ready=d["ready"],
                                     updated=d["updated"],
                                     deadline_exceeded=d["deadline_exceeded"],
                                     failure=failures.get(d["revision"], ""))
        for d in deployments if d["revision"]
    }


