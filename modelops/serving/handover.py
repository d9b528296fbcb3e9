"""Connections follow the Service: a pod taken out of service closes its keep-alive connections.

A Service selector change moves only new connections; clients that keep theirs open (requests'
Session, Go, Java, our pipeline router) would keep talking to the old version's pods, which stay
warm for rollback. So the operator labels out-of-service pods `modelops.io/role=standby`, the
kubelet writes the pod's labels into a downward-API file, and while that file says standby every
response of this worker carries `Connection: close` (gunicorn's force_close), and idle
connections end at the keep-alive timeout: each client's next request opens a new connection,
which the Service sends to the serving version. The file is re-read at most once a second;
without the file (outside Kubernetes) nothing changes.

Kubernetes promises that file only eventually: the kubelet usually rewrites it within a second,
but a refresh it misses waits for its periodic pod sync, 60 to 90 s (kubernetes#59813), and on
CI a bad version went unjudged for a minute that way. So every connection also has a maximum
age (`ConnectionAge`, MODELOPS_MAX_CONNECTION_AGE_SECONDS, default 5 s): the first response
after it carries `Connection: close`, which bounds how long any client stays on a pod the
Service left, at the price of one reconnection per client every few seconds.
"""

from __future__ import annotations

import os
import random
import time
from typing import Callable, Mapping

from modelops import contract

CHECK_SECONDS = 1.0
AGE_JITTER = 0.1
"""Each connection's age limit is drawn from [(1 - AGE_JITTER) * max, max]: clients opened
together do not all reconnect together."""


def parse_labels(text: str) -> dict[str, str]:
    """The downward API's labels format: one `key="value"` per line (value JSON-escaped)."""
    labels = {}
    for line in text.splitlines():
        key, sep, value = line.partition("=")
        if sep and len(value) >= 2 and value[0] == value[-1] == '"':
            labels[key.strip()] = value[1:-1].replace('\\"', '"').replace("\\\\", "\\")
    return labels


class RoleFile:
    """Whether this pod is out of service, from its labels file (cached for CHECK_SECONDS)."""

    def __init__(self, path: str | None, clock: Callable[[], float] = time.monotonic):
        self.path, self.clock = path, clock
        self._checked = float("-inf")
        self._standby = False

    def standby(self) -> bool:
        if not self.path:
            return False
        now = self.clock()
        if now - self._checked >= CHECK_SECONDS:
            self._checked = now
            try:
                with open(self.path, encoding="utf-8") as labels:
                    role = parse_labels(labels.read()).get(contract.LABEL_ROLE, "")
            except OSError:
                role = ""  # no file: serve as usual
            self._standby = role == contract.ROLE_STANDBY
        return self._standby


def from_env(environ: Mapping[str, str] = os.environ) -> RoleFile:
    return RoleFile(environ.get(contract.ENV_POD_LABELS_FILE) or None)


class ConnectionAge:
    """Whether a connection has outlived its maximum age (its first request starts the clock)."""

    def __init__(self, max_age: float, clock: Callable[[], float] = time.monotonic,
                 draw: Callable[[], float] = random.random):
        self.max_age, self.clock, self.draw = max_age, clock, draw

    def expired(self, connection: object) -> bool:
        if self.max_age <= 0:
            return False
        now = self.clock()
        deadline = getattr(connection, "modelops_deadline", None)
        if deadline is None:
            deadline = now + self.max_age * (1 - AGE_JITTER * self.draw())
            setattr(connection, "modelops_deadline", deadline)
        return now >= deadline
