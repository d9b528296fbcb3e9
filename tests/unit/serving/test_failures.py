"""StartupFailure lines and the termination-message file."""

from __future__ import annotations

from modelops.serving.failures import CHECKSUM_MISMATCH, StartupFailure, write_termination_message


def test_line_is_reason_colon_message_on_one_line():
    failure = StartupFailure(CHECKSUM_MISMATCH, "artifact sha256 is 12ab\nbut  expected 9f2c")
    assert failure.line() == "ChecksumMismatch: artifact sha256 is 12ab but expected 9f2c"


def test_line_is_bounded():
    line = StartupFailure("LoadFailed", "x" * 10_000).line()
    assert len(line) <= 1000 and line.endswith("...") and line.startswith("LoadFailed: x")


def test_written_to_the_termination_log(tmp_path):
    path = tmp_path / "termination-log"
    write_termination_message(path, StartupFailure("ArtifactNotFound", "no file at /m"))
    assert path.read_text() == "ArtifactNotFound: no file at /m\n"


def test_unwritable_termination_log_is_ignored(tmp_path):
    missing_dir = tmp_path / "no" / "such" / "dir" / "log"
    write_termination_message(missing_dir, StartupFailure("LoadFailed", "x"))  # does not raise
    assert not missing_dir.exists()
