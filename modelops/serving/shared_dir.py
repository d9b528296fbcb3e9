"""The per-pod directory that gunicorn workers share: metrics files and readiness markers.

prometheus-client's multiprocess mode keeps each worker's counters in files under
PROMETHEUS_MULTIPROC_DIR, and it decides whether to do so when it is first imported, so
prepare_shared_dir must run before anything imports prometheus_client (this module does not).
The same directory holds one `ready-<pid>` marker per worker that has loaded its model, so the
pod reports ready only when every worker can answer. File I/O only; no HTTP.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import MutableMapping
from pathlib import Path

from modelops import contract as c

_READY_PREFIX = "ready-"
_STALE_PATTERNS = ("*.db", f"{_READY_PREFIX}*", "feedback.sqlite3*")


def prepare_shared_dir(environ: MutableMapping[str, str]) -> Path:
    """Create (under /tmp, if unset) and empty the multiprocess directory; export it in env."""
    configured = environ.get(c.ENV_METRICS_DIR, "")
    if configured:
        directory = Path(configured)
        directory.mkdir(parents=True, exist_ok=True)
    else:
        directory = Path(tempfile.mkdtemp(prefix="modelops-metrics-", dir=c.SCRATCH_MOUNT))
    for pattern in _STALE_PATTERNS:
        for stale in directory.glob(pattern):
            stale.unlink(missing_ok=True)
    environ[c.ENV_METRICS_DIR] = str(directory)
    return directory


class WorkerReadiness:
    """Ready markers, one per worker that has loaded its model."""

    def __init__(self, directory: Path, expected_workers: int) -> None:
        self.directory = directory
        self.expected_workers = expected_workers

    def mark_ready(self, pid: int) -> None:
        (self.directory / f"{_READY_PREFIX}{pid}").touch()

    def forget(self, pid: int) -> None:
        (self.directory / f"{_READY_PREFIX}{pid}").unlink(missing_ok=True)

    def all_ready(self) -> bool:
        """True when at least `expected_workers` live workers have loaded their model."""
        live = 0
        for marker in self.directory.glob(f"{_READY_PREFIX}*"):
            pid = marker.name[len(_READY_PREFIX):]
            if pid.isdigit() and _alive(int(pid)):
                live += 1
        return live >= self.expected_workers


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True
