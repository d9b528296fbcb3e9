"""`python -m modelops.serving fetch` and start-up failures, called in-process."""

from __future__ import annotations

import os

import pytest

from modelops.serving.__main__ import main


@pytest.fixture
def env(monkeypatch, tmp_path):
    """A clean MODELOPS_ environment with the termination log in tmp_path."""
    for name in list(os.environ):
        if name.startswith("MODELOPS_"):
            monkeypatch.delenv(name)
    log = tmp_path / "termination-log"
    monkeypatch.setenv("MODELOPS_TERMINATION_LOG", str(log))

    def apply(values: dict[str, str]):
        for name, value in values.items():
            monkeypatch.setenv(name, value)
        return log

    return apply


def test_fetch_verifies_a_local_artifact(env, artifacts):
    log = env(artifacts.iris.env())
    assert main(["fetch"]) == 0 and not log.exists()


def test_fetch_checksum_mismatch_writes_the_reason(env, artifacts):
    log = env(artifacts.iris.env(MODELOPS_ARTIFACT_SHA256="0" * 64))
    assert main(["fetch"]) == 1
    line = log.read_text()
    assert line.startswith(f"ChecksumMismatch: artifact sha256 is {artifacts.iris.sha256} but ")
    assert line.count("\n") == 1


def test_serve_missing_artifact_fails_before_starting(env, tmp_path):
    log = env({"MODELOPS_MODEL_NAME": "m", "MODELOPS_ARTIFACT_URI": str(tmp_path / "none.joblib")})
    assert main(["serve"]) == 1
    assert log.read_text().startswith("ArtifactNotFound: no file at ")


def test_invalid_settings_are_reported(env):
    log = env({"MODELOPS_MODEL_NAME": "m", "MODELOPS_ARTIFACT_URI": "/m.joblib", "MODELOPS_WORKERS": "lots"})
    assert main(["fetch"]) == 1
    assert log.read_text() == "InvalidSettings: MODELOPS_WORKERS must be an integer from 1 to 64, got 'lots'\n"


def test_pipeline_mode_has_nothing_to_fetch(env):
    env({"MODELOPS_MODE": "pipeline", "MODELOPS_PIPELINE_NAME": "p",
         "MODELOPS_PIPELINE_STEPS": '[{"name": "a", "model": "m", "url": "http://127.0.0.1:1"}]'})
    assert main(["fetch"]) == 0


def test_unknown_command_is_a_usage_error(capsys):
    assert main(["train"]) == 2
    assert "usage" in capsys.readouterr().err
