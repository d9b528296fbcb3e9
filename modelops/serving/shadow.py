"""Shadow traffic: copy a share of this worker's successful predict requests to a candidate.

Switched by pod annotations, not environment: the operator patches `modelops.io/shadow-*` on the
serving revision's running pods (as it patches their role label), the kubelet rewrites the
downward-API file named by MODELOPS_POD_ANNOTATIONS_FILE, and a thread in every worker re-reads it
once a second. A variable in the pod template would replace the serving revision's pods, which
a shadow must leave alone. The per-pod limits (queue, senders, deadline) are environment.

`Shadow.offer` runs on the request thread once the answer is built; it only samples and puts the
copy (the body and our first output) on a bounded per-worker queue, never blocking: a full
queue sheds the copy. Sender threads (MODELOPS_SHADOW_SENDERS per worker, started on first use,
after gunicorn's fork) POST each copy to the candidate's unversioned v1/v2 route over a kept
http.client connection: no redirect is followed, a reused connection found closed is retried
once, and one deadline (MODELOPS_SHADOW_TIMEOUT_SECONDS from the offer) bounds the wait in the
queue, the connect, the send and every read. Each copy ends in exactly one outcome: mirrored
(compared: rows, disagreements, latency), shed, error (non-2xx, or an answer that cannot be
compared), unreachable (refused, reset, no such host) or timeout. Copies carry the
`Modelops-Shadow` header (and the user's `X-Request-Id`, so both answers can be found in the
logs) and are never mirrored again.
"""

from __future__ import annotations

import collections
import http.client
import logging
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import orjson

from modelops import contract as c
from modelops.serving.handover import CHECK_SECONDS, parse_labels
from modelops.serving.metrics import ShadowMetrics
from modelops.serving.settings import ServingSettings
from modelops.serving.shadow_client import CandidateClient
from modelops.serving.shadow_diff import (
    BadAnswer, ShadowTarget, candidate_output, disagreements, parse_target,
)

log = logging.getLogger(__name__)

MAX_QUEUED_BYTES = 32 * 1024 * 1024
"""Request bodies a worker's queue holds at most, whatever their count."""
LOG_INTERVAL_SECONDS = 60.0
_SHADOW_ENVIRON = "HTTP_" + c.HEADER_SHADOW.upper().replace("-", "_")
_BINARY_HEADER = "Inference-Header-Content-Length"
_BINARY_ENVIRON = "HTTP_INFERENCE_HEADER_CONTENT_LENGTH"
_REQUEST_ID_HEADER = "X-Request-Id"
_REQUEST_ID_ENVIRON = "HTTP_X_REQUEST_ID"


@dataclass(frozen=True)
class Copy:
    target: ShadowTarget
    protocol: str
    path: str
    body: bytes
    headers: dict
    output: tuple[str, np.ndarray]
    """Our answer's first output (name, array)."""
    kind: str
    deadline: float


class AnnotationsFile:
    """The shadow target in the pod's annotations file, re-read at most every CHECK_SECONDS.

    `target` is replaced whole, so request threads read it without a lock."""

    def __init__(self, path, clock: Callable[[], float] = time.monotonic) -> None:
        self.path, self.clock = path, clock
        self._checked = float("-inf")
        self._text: str | None = None
        self.target: ShadowTarget | None = None
        self.error: str | None = None

    def refresh(self) -> bool:
        """Re-read when due; True when the target or the error changed."""
        now = self.clock()
        if now - self._checked < CHECK_SECONDS:
            return False
        self._checked = now
        try:
            with open(self.path, encoding="utf-8") as annotations:
                text = annotations.read()
        except OSError:
            text = ""  # no file: shadow off
        if text == self._text:
            return False
        self._text = text
        try:
            self.target, self.error = parse_target(parse_labels(text)), None
        except ValueError as error:
            self.target, self.error = None, str(error)
            log.warning("Shadow traffic off: %s", error)
        return True


class CopyQueue:
    """A bounded FIFO of copies (by count and by body bytes); `put` never blocks."""

    def __init__(self, max_items: int, max_bytes: int = MAX_QUEUED_BYTES) -> None:
        self._items: collections.deque[Copy] = collections.deque()
        self._max_items, self._max_bytes, self._bytes = max_items, max_bytes, 0
        self._ready = threading.Condition()

    def put(self, copy: Copy) -> bool:
        with self._ready:
            if (len(self._items) >= self._max_items
                    or self._bytes + len(copy.body) > self._max_bytes):
                return False
            self._items.append(copy)
            self._bytes += len(copy.body)
            self._ready.notify()
            return True

    def get(self) -> Copy:
        with self._ready:
            while not self._items:
                self._ready.wait()
            copy = self._items.popleft()
            self._bytes -= len(copy.body)
            return copy

    def __len__(self) -> int:
        return len(self._items)


class Shadow:
    """One worker's forwarder: samples, queues, sends, compares and counts."""

    def __init__(self, settings: ServingSettings, metrics: ShadowMetrics, *,
                 sample: Callable[[], float] = random.random) -> None:
        self.annotations = AnnotationsFile(settings.pod_annotations_file)
        self.queue = CopyQueue(settings.shadow_queue)
        self._name, self._version = settings.model_name, settings.model_version
        self._senders, self._timeout = settings.shadow_senders, settings.shadow_timeout_seconds
        self._metrics, self._sample = metrics, sample
        self._lock = threading.Lock()
        self._started = False
        self._applied: str | None = None
        self._logged: dict[str, float] = {}

    def offer(self, environ: dict, protocol: str, body: bytes, output: tuple[str, np.ndarray],
              kind: str) -> None:
        """Maybe queue a copy of a request answered with `output`; never raises or blocks."""
        try:
            target = self.annotations.target
            if (target is None or environ.get(_SHADOW_ENVIRON)
                    or self._sample() * 100.0 >= target.percent):
                return
            if not self.queue.put(self._copy(environ, target, protocol, body, output, kind)):
                self._metrics.outcome(target.version, "shed")
                return
            if not self._started:
                self._start_senders()
        except Exception:  # a bug here must not fail the user's answer
            self._log("offer", "Could not offer a shadow copy", exc_info=True)

    def start(self) -> Shadow:
        """Read the annotations now, then once a second in a thread of this worker (so the
        share in effect shows in the metrics even while no request comes)."""
        self._refresh()
        threading.Thread(target=self._watch, name="shadow-annotations", daemon=True).start()
        return self

    def _watch(self) -> None:
        while True:
            time.sleep(CHECK_SECONDS)
            try:
                self._refresh()
            except Exception:  # keep watching whatever happens
                self._log("watch", "Could not apply the shadow annotations", exc_info=True)

    def _refresh(self) -> None:
        if self.annotations.refresh():
            target = self.annotations.target
            candidate = target.version if target else None
            self._metrics.configured(self._applied, candidate, target.percent if target else 0,
                                     self.annotations.error is not None)
            self._applied = candidate

    def _copy(self, environ: dict, target: ShadowTarget, protocol: str, body: bytes,
              output: tuple[str, np.ndarray], kind: str) -> Copy:
        path = (f"/v1/models/{self._name}:predict" if protocol == "v1"
                else f"/v2/models/{self._name}/infer")
        headers = {"Content-Type": "application/json", c.HEADER_SHADOW: self._version or "-"}
        if environ.get(_BINARY_ENVIRON):
            headers[_BINARY_HEADER] = environ[_BINARY_ENVIRON]
        if environ.get(_REQUEST_ID_ENVIRON):  # already validated: the answer echoes it
            headers[_REQUEST_ID_HEADER] = environ[_REQUEST_ID_ENVIRON]
        return Copy(target, protocol, path, body, headers, output, kind,
                    time.monotonic() + self._timeout)

    def _start_senders(self) -> None:
        with self._lock:
            if self._started:
                return
            self._started = True
        for index in range(self._senders):
            threading.Thread(target=self._run, name=f"shadow-sender-{index}", daemon=True).start()

    def _run(self) -> None:
        client = CandidateClient()
        while True:
            copy = self.queue.get()
            try:
                outcome = self._send(client, copy)
            except Exception:  # keep the sender alive whatever happens
                self._log("bug", "Shadow copy failed unexpectedly", exc_info=True)
                outcome = "error"
            self._metrics.outcome(copy.target.version, outcome)

    def _send(self, client: CandidateClient, copy: Copy) -> str:
        if time.monotonic() >= copy.deadline:
            return "shed"  # waited out its deadline in the queue: the candidate is too slow
        started = time.perf_counter()
        try:
            answer = client.post(copy.target.url, copy.path, copy.body, copy.headers,
                                 copy.deadline)
        except TimeoutError:
            return "timeout"
        except (OSError, http.client.HTTPException) as error:
            self._log("unreachable", "Shadow candidate %s unreachable: %s", copy.target.url,
                      type(error).__name__)
            return "unreachable"
        status, data = answer.status, answer.body
        if answer.version != copy.target.version:  # not the candidate's answer (pinned.py)
            self._log("unreachable", "Shadow candidate %s unreachable: HTTP %s from %s",
                      copy.target.url, status, answer.version or "a server naming no version")
            return "unreachable"
        seconds = time.perf_counter() - started
        try:
            if not 200 <= status < 300:
                raise BadAnswer(f"HTTP {status}: {data[:200]!r}")
            name, ours = copy.output
            theirs = candidate_output(copy.protocol, orjson.loads(data), name)
            differ = disagreements(ours, theirs, copy.kind, copy.target.tolerance)
        except (BadAnswer, orjson.JSONDecodeError) as error:
            self._metrics.answered(copy.target.version, seconds)
            self._log("error", "Shadow candidate %s: %s", copy.target.version, error)
            return "error"
        self._metrics.compared(copy.target.version, len(ours), differ, seconds)
        return "mirrored"

    def _log(self, kind: str, message: str, *args, exc_info: bool = False) -> None:
        """At most one line per kind of problem per LOG_INTERVAL_SECONDS."""
        now = time.monotonic()
        if now - self._logged.get(kind, float("-inf")) >= LOG_INTERVAL_SECONDS:
            self._logged[kind] = now
            log.warning(message, *args, exc_info=exc_info)
