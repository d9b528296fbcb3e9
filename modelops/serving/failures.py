"""Startup failures and the one-line termination message the operator reads.

Anything that stops the server from starting (bad settings, a missing or tampered artifact, a
model that will not load) is raised as a StartupFailure with a CamelCase reason. The process
writes `<Reason>: <message>` as ONE line to the container's termination-message file and exits 1;
the operator parses that line into the Model's status. Pure, except write_termination_message.
"""

from __future__ import annotations

import logging
from pathlib import Path

INVALID_SETTINGS = "InvalidSettings"
ARTIFACT_NOT_FOUND = "ArtifactNotFound"
DOWNLOAD_FAILED = "DownloadFailed"
CHECKSUM_MISMATCH = "ChecksumMismatch"
UNSUPPORTED_FORMAT = "UnsupportedFormat"
UNTRUSTED_TYPES = "UntrustedTypes"
VERSION_MISMATCH = "SklearnVersionMismatch"
LOAD_FAILED = "LoadFailed"
ACCESS_DENIED = "AccessDenied"  # the store refused the credentials (s3://, models:/)
SELF_TEST_FAILED = "ModelSelfTestFailed"

# Kubernetes keeps at most 4096 bytes of a termination message; stay well below.
_MAX_MESSAGE_CHARS = 1000

log = logging.getLogger(__name__)


class StartupFailure(Exception):
    """The server cannot start; `reason` is CamelCase, `message` says why in one sentence."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(f"{reason}: {message}")
        self.reason = reason
        self.message = message

    def line(self) -> str:
        """The termination message: `<Reason>: <message>` on one line, bounded in length."""
        text = " ".join(f"{self.reason}: {self.message}".split())
        if len(text) > _MAX_MESSAGE_CHARS:
            text = text[: _MAX_MESSAGE_CHARS - 3] + "..."
        return text


def write_termination_message(path: Path, failure: StartupFailure) -> None:
    """Write the failure's line to `path`; an unwritable path is logged and otherwise ignored."""
    try:
        path.write_text(failure.line() + "\n", encoding="utf-8")
    except OSError as error:
        log.warning("Could not write termination message to %s: %s", path, error)
