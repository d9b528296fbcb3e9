"""ServingSettings.from_env: defaults, parsing, and errors that name the variable."""

from __future__ import annotations

from pathlib import Path

import pytest

from modelops import contract as c
from modelops.serving.failures import INVALID_SETTINGS, StartupFailure
from modelops.serving.settings import PipelineStep, ServingSettings, parse_steps

SHA = "ab" * 32
MODEL = {c.ENV_MODEL_NAME: "iris", c.ENV_ARTIFACT_URI: "file:///models/iris.joblib"}
STEPS = '[{"name": "a", "model": "m1", "url": "http://127.0.0.1:9001"}]'
PIPELINE = {c.ENV_MODE: "pipeline", c.ENV_PIPELINE_NAME: "chain", c.ENV_PIPELINE_STEPS: STEPS}


def test_defaults_match_the_contract():
    settings = ServingSettings.from_env(MODEL)
    assert (settings.port, settings.host, settings.workers, settings.threads) == (8080, "0.0.0.0", 1, 4)
    assert settings.max_body_bytes == 10 * 1024 * 1024
    assert settings.download_timeout_seconds == 30.0
    assert settings.download_max_bytes == 512 * 1024 * 1024
    assert settings.sklearn_version_policy == "refuse"
    assert settings.batching is False and settings.batch_max_size == 1
    assert settings.method == "predict" and settings.artifact_format == ""
    assert settings.termination_log == Path(c.DEFAULT_TERMINATION_LOG)
    assert settings.artifact_dir == Path(c.ARTIFACT_MOUNT)
    assert settings.feedback_window == 1000
    assert settings.metrics_dir is None
    assert settings.served_name == "iris"
    assert settings.pod_annotations_file is None  # no shadow traffic
    assert (settings.shadow_queue, settings.shadow_senders, settings.shadow_timeout_seconds) == (
        32, 2, 1.0)


def test_every_variable_is_read():
    env = {
        **MODEL, c.ENV_MODEL_VERSION: "3", c.ENV_ARTIFACT_SHA256: SHA.upper(),
        c.ENV_ARTIFACT_FORMAT: "skops", c.ENV_ARTIFACT_DIR: "/data", c.ENV_METHOD: "predict_proba",
        c.ENV_PORT: "9000", c.ENV_HOST: "127.0.0.1", c.ENV_WORKERS: "2", c.ENV_THREADS: "8",
        c.ENV_MAX_BODY_BYTES: "2048", c.ENV_TERMINATION_LOG: "/tmp/term",
        c.ENV_SKOPS_TRUSTED_TYPES: " a.B , c.D ,", c.ENV_SKLEARN_VERSION_POLICY: "warn",
        c.ENV_DOWNLOAD_TIMEOUT: "2.5", c.ENV_DOWNLOAD_MAX_BYTES: "100", c.ENV_BATCH_MAX_SIZE: "16",
        c.ENV_BATCH_MAX_WAIT_MS: "2", c.ENV_FEEDBACK_WINDOW: "0", c.ENV_GRACEFUL_TIMEOUT: "7",
        c.ENV_METRICS_DIR: "/tmp/metrics", c.ENV_POD_ANNOTATIONS_FILE: "/etc/podinfo/annotations",
        c.ENV_SHADOW_QUEUE: "8", c.ENV_SHADOW_SENDERS: "3", c.ENV_SHADOW_TIMEOUT: "0.5",
    }
    settings = ServingSettings.from_env(env)
    assert settings.model_version == "3" and settings.artifact_sha256 == SHA
    assert settings.artifact_format == "skops" and settings.artifact_dir == Path("/data")
    assert settings.method == "predict_proba"
    assert (settings.port, settings.host, settings.workers, settings.threads) == (9000, "127.0.0.1", 2, 8)
    assert settings.max_body_bytes == 2048 and settings.termination_log == Path("/tmp/term")
    assert settings.skops_trusted_types == ("a.B", "c.D")
    assert settings.sklearn_version_policy == "warn"
    assert (settings.download_timeout_seconds, settings.download_max_bytes) == (2.5, 100)
    assert settings.batching and (settings.batch_max_size, settings.batch_max_wait_ms) == (16, 2.0)
    assert settings.feedback_window == 0 and settings.graceful_timeout_seconds == 7.0
    assert settings.metrics_dir == Path("/tmp/metrics")
    assert settings.pod_annotations_file == Path("/etc/podinfo/annotations")
    assert (settings.shadow_queue, settings.shadow_senders, settings.shadow_timeout_seconds) == (
        8, 3, 0.5)


@pytest.mark.parametrize(("env", "named"), [
    ({c.ENV_WORKERS: "0"}, c.ENV_WORKERS),
    ({c.ENV_WORKERS: "two"}, c.ENV_WORKERS),
    ({c.ENV_THREADS: "-1"}, c.ENV_THREADS),
    ({c.ENV_PORT: "70000"}, c.ENV_PORT),
    ({c.ENV_MAX_BODY_BYTES: "1"}, c.ENV_MAX_BODY_BYTES),
    ({c.ENV_METHOD: "transform"}, c.ENV_METHOD),
    ({c.ENV_ARTIFACT_FORMAT: "onnx"}, c.ENV_ARTIFACT_FORMAT),
    ({c.ENV_SKLEARN_VERSION_POLICY: "ignore"}, c.ENV_SKLEARN_VERSION_POLICY),
    ({c.ENV_ARTIFACT_SHA256: "abc"}, c.ENV_ARTIFACT_SHA256),
    ({c.ENV_DOWNLOAD_TIMEOUT: "nan"}, c.ENV_DOWNLOAD_TIMEOUT),
    ({c.ENV_DOWNLOAD_TIMEOUT: "0"}, c.ENV_DOWNLOAD_TIMEOUT),
    ({c.ENV_BATCH_MAX_WAIT_MS: "inf"}, c.ENV_BATCH_MAX_WAIT_MS),
    ({c.ENV_MODE: "router"}, c.ENV_MODE),
    ({c.ENV_MODEL_NAME: ""}, c.ENV_MODEL_NAME),
    ({c.ENV_MODEL_NAME: "a/b"}, c.ENV_MODEL_NAME),
    ({c.ENV_MODEL_VERSION: "1 2"}, c.ENV_MODEL_VERSION),
    ({c.ENV_ARTIFACT_URI: ""}, c.ENV_ARTIFACT_URI),
    ({c.ENV_ARTIFACT_URI: "https://example.invalid/m.joblib"}, c.ENV_ARTIFACT_SHA256),
    ({c.ENV_GRACEFUL_TIMEOUT: "-3"}, c.ENV_GRACEFUL_TIMEOUT),
    ({c.ENV_SHADOW_QUEUE: "0"}, c.ENV_SHADOW_QUEUE),
    ({c.ENV_SHADOW_SENDERS: "many"}, c.ENV_SHADOW_SENDERS),
    ({c.ENV_SHADOW_TIMEOUT: "0"}, c.ENV_SHADOW_TIMEOUT),
])
def test_bad_values_are_refused_naming_the_variable(env, named):
    with pytest.raises(StartupFailure) as raised:
        ServingSettings.from_env({**MODEL, **env})
    assert raised.value.reason == INVALID_SETTINGS
    assert named in raised.value.message
    assert raised.value.line().startswith("InvalidSettings: ")


def test_pipeline_mode_needs_no_artifact():
    settings = ServingSettings.from_env(PIPELINE)
    assert settings.served_name == "chain" and settings.pipeline_timeout_seconds == 5.0
    assert settings.pipeline_steps == (PipelineStep("a", "m1", "http://127.0.0.1:9001", "previous"),)


def test_steps_parse_with_inputs_and_trailing_slashes():
    steps = parse_steps('[{"name": "a", "model": "m1", "url": "http://h:1/"},'
                        ' {"name": "b", "model": "m2", "url": "https://h:2", "input": "features+previous"}]')
    assert steps[0].url == "http://h:1"
    assert steps[1] == PipelineStep("b", "m2", "https://h:2", "features+previous")


@pytest.mark.parametrize(("text", "fragment"), [
    ("", "not valid JSON"),
    ("{}", "non-empty JSON list"),
    ("[]", "non-empty JSON list"),
    ("[1]", "[0] must be an object"),
    ('[{"name": "a", "model": "m"}]', "[0].url"),
    ('[{"name": "a", "model": "m", "url": "ftp://x"}]', "[0].url"),
    ('[{"name": "A B", "model": "m", "url": "http://x"}]', "[0].name"),
    ('[{"name": "a", "model": "m", "url": "http://x", "input": "both"}]', "[0].input"),
    ('[{"name": "a", "model": "m", "url": "http://x", "input": "features+previous"}]', "first step"),
    ('[{"name": "a", "model": "m", "url": "http://x"}, {"name": "a", "model": "n", "url": "http://y"}]',
     "repeated: a"),
])
def test_bad_steps_are_refused(text, fragment):
    with pytest.raises(StartupFailure) as raised:
        ServingSettings.from_env({**PIPELINE, c.ENV_PIPELINE_STEPS: text})
    assert c.ENV_PIPELINE_STEPS in raised.value.message and fragment in raised.value.message


def test_pipeline_name_is_required():
    with pytest.raises(StartupFailure, match=c.ENV_PIPELINE_NAME):
        ServingSettings.from_env({c.ENV_MODE: "pipeline", c.ENV_PIPELINE_STEPS: STEPS})
