"""The shared multiprocess directory and the per-worker ready markers."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from modelops import contract as c
from modelops.serving.shared_dir import WorkerReadiness, prepare_shared_dir


def test_created_under_tmp_when_unset():
    env: dict[str, str] = {}
    directory = prepare_shared_dir(env)
    try:
        assert directory.is_dir() and str(directory).startswith(c.SCRATCH_MOUNT)
        assert env[c.ENV_METRICS_DIR] == str(directory)
    finally:
        directory.rmdir()


def test_configured_directory_is_created_and_emptied_of_stale_state(tmp_path):
    directory = tmp_path / "metrics"
    directory.mkdir()
    for name in ("counter_123.db", "gauge_livesum_123.db", "ready-123", "feedback.sqlite3",
                 "feedback.sqlite3-wal", "keep.txt"):
        (directory / name).write_text("x")
    env = {c.ENV_METRICS_DIR: str(directory)}
    assert prepare_shared_dir(env) == directory
    assert sorted(p.name for p in directory.iterdir()) == ["keep.txt"]
    fresh = tmp_path / "new" / "dir"
    assert prepare_shared_dir({c.ENV_METRICS_DIR: str(fresh)}) == fresh and fresh.is_dir()


def test_ready_only_when_every_live_worker_has_loaded(tmp_path):
    readiness = WorkerReadiness(tmp_path, expected_workers=2)
    assert not readiness.all_ready()
    readiness.mark_ready(os.getpid())
    assert not readiness.all_ready()
    helper = subprocess.Popen([sys.executable, "-c", "import sys; sys.stdin.read()"],
                              stdin=subprocess.PIPE)
    try:
        readiness.mark_ready(helper.pid)
        assert readiness.all_ready()
    finally:
        helper.communicate(b"", timeout=30)
    assert not readiness.all_ready()  # a dead worker's marker does not count
    readiness.forget(helper.pid)
    assert not (tmp_path / f"ready-{helper.pid}").exists()
    readiness.forget(helper.pid)  # forgetting twice is fine


def test_stray_files_do_not_count(tmp_path):
    (tmp_path / "ready-notapid").touch()
    assert not WorkerReadiness(Path(tmp_path), expected_workers=1).all_ready()
