"""ModelBackend: loading (sync and background), readiness, model errors, batching."""

from __future__ import annotations

import os
import threading

import numpy as np
import pytest
from prometheus_client import CollectorRegistry
from serving_support import IRIS_ROW, metric
from prometheus_client import generate_latest

from modelops.serving.app import load_from_settings
from modelops.serving.dataplane import ModelBackend
from modelops.serving.errors import InvalidInput, ModelFailed, NotReady
from modelops.serving.failures import StartupFailure
from modelops.serving.metrics import ServingMetrics
from modelops.serving.settings import ServingSettings
from modelops.serving.shared_dir import WorkerReadiness


def backend_for(artifact, readiness=None, **env):
    settings = ServingSettings.from_env(artifact.env(**env))
    metrics = ServingMetrics(model="iris", version="1", registry=CollectorRegistry())
    backend = ModelBackend(settings, metrics, load=lambda: load_from_settings(settings),
                           readiness=readiness)
    return backend, metrics


def test_not_ready_until_loaded(artifacts):
    backend, metrics = backend_for(artifacts.iris)
    assert not backend.is_ready() and "still loading" in backend.not_ready_reason()
    with pytest.raises(NotReady):
        backend.infer(np.array([IRIS_ROW]))
    backend.load()
    assert backend.is_ready()
    assert backend.infer(np.array([IRIS_ROW])).outputs[0][1].tolist() == [0]
    text = generate_latest(metrics.registry).decode()
    assert metric(text, "modelops_artifact", sha256=artifacts.iris.sha256, format="joblib") == 1.0
    assert metric(text, "modelops_model_load_seconds", model="iris") > 0


def test_ready_waits_for_every_worker(artifacts, tmp_path):
    readiness = WorkerReadiness(tmp_path, expected_workers=2)
    backend, _ = backend_for(artifacts.iris, readiness=readiness)
    backend.load()
    assert (tmp_path / f"ready-{os.getpid()}").exists()
    assert not backend.is_ready() and "not every worker" in backend.not_ready_reason()
    # This worker can still answer: readiness is about the pod, inference about this worker.
    assert backend.infer(np.array([IRIS_ROW])).outputs[0][1].tolist() == [0]


def test_background_load_failure_is_reported(artifacts, tmp_path):
    broken = tmp_path / "broken.joblib"
    broken.write_bytes(b"not a model")
    settings = ServingSettings.from_env(artifacts.iris.env(MODELOPS_ARTIFACT_URI=str(broken),
                                                           MODELOPS_ARTIFACT_SHA256=""))
    backend = ModelBackend(settings, ServingMetrics(model="iris", version="1"),
                           load=lambda: load_from_settings(settings))
    failures: list[StartupFailure] = []
    backend.load_in_background(failures.append).join(timeout=60)
    assert [f.reason for f in failures] == ["LoadFailed"] and not backend.is_ready()


def test_background_load_succeeds(artifacts):
    backend, _ = backend_for(artifacts.iris)
    failures: list = []
    backend.load_in_background(failures.append).join(timeout=60)
    assert failures == [] and backend.is_ready()


def test_model_exceptions_become_model_failed_and_are_counted(artifacts):
    backend, metrics = backend_for(artifacts.raising)
    backend.load()
    with pytest.raises(ModelFailed, match="ValueError: negative first feature"):
        backend.infer(np.array([[-1.0, 1, 1, 1]]))
    assert backend.infer(np.array([IRIS_ROW])).outputs[0][1].tolist() == [0]
    text = generate_latest(metrics.registry).decode()
    assert metric(text, "modelops_model_errors_total", model="iris", version="1") == 1.0


def test_outputs_can_be_chosen_and_unknown_ones_are_refused(artifacts):
    backend, _ = backend_for(artifacts.iris)
    backend.load()
    result = backend.infer(np.array([IRIS_ROW]), ("predict_proba", "predict"))
    assert [name for name, _ in result.outputs] == ["predict_proba", "predict"]
    with pytest.raises(InvalidInput, match="unknown output 'transform'"):
        backend.infer(np.array([IRIS_ROW]), ("transform",))


def test_configured_method_is_the_default_output(artifacts):
    backend, _ = backend_for(artifacts.iris, MODELOPS_METHOD="predict_proba")
    backend.load()
    name, values = backend.infer(np.array([IRIS_ROW])).outputs[0]
    assert name == "predict_proba" and values.shape == (1, 3)


def test_batching_backend_groups_concurrent_requests(artifacts):
    backend, _ = backend_for(artifacts.iris, MODELOPS_BATCH_MAX_SIZE="4",
                             MODELOPS_BATCH_MAX_WAIT_MS="10000")
    backend.load()
    barrier, results = threading.Barrier(4), [None] * 4
    rows = [IRIS_ROW, [6.7, 3.0, 5.2, 2.3], IRIS_ROW, [5.9, 3.0, 4.2, 1.5]]

    def run(index: int) -> None:
        barrier.wait()
        results[index] = backend.infer(np.array([rows[index]])).outputs[0][1].tolist()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert results == [[0], [2], [0], [1]]
    assert backend._batcher is not None and backend._batcher.calls < 4
