"""The serving image, run the way a Kubernetes pod runs it, predicting with a host-trained model.

Each container runs on the host network bound to a free loopback port, as uid 65532 with a
read-only root filesystem and a tmpfs at /tmp (Kubernetes' emptyDir), the artifact mounted
read-only at the contract's artifact path. The model is trained here, in tmp, with the host's
scikit-learn, so a served prediction equal to the model's own proves the pinned versions agree.
"""

from __future__ import annotations

import functools
import hashlib
import http.server
import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import joblib
import numpy as np
import pytest
import requests
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression

from modelops import contract
from tests.image.docker_cli import Images, container_logs, docker

pytestmark = pytest.mark.docker

MODEL_NAME = "iris"
MODEL_VERSION = "7"
ARTIFACT_FILE = "model.joblib"
READY_WAIT_SECONDS = 90
EXIT_WAIT_SECONDS = 90
WRONG_SHA256 = "0" * 64


@dataclass(frozen=True)
class TrainedModel:
    directory: Path
    sha256: str
    estimator: LogisticRegression
    rows: np.ndarray


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> TrainedModel:
    """Logistic regression on iris, dumped with joblib into a directory the container can read."""
    features, target = load_iris(return_X_y=True)
    estimator = LogisticRegression(max_iter=1000).fit(features, target)
    directory = tmp_path_factory.mktemp("artifact")
    joblib.dump(estimator, directory / ARTIFACT_FILE)
    directory.chmod(0o755)
    (directory / ARTIFACT_FILE).chmod(0o644)
    digest = hashlib.sha256((directory / ARTIFACT_FILE).read_bytes()).hexdigest()
    return TrainedModel(directory, digest, estimator, features[::15])


def serving_env(port: int, uri: str, sha256: str) -> dict[str, str]:
    return {
        contract.ENV_MODEL_NAME: MODEL_NAME,
        contract.ENV_MODEL_VERSION: MODEL_VERSION,
        contract.ENV_ARTIFACT_URI: uri,
        contract.ENV_ARTIFACT_SHA256: sha256,
        contract.ENV_HOST: "127.0.0.1",
        contract.ENV_PORT: str(port),
        contract.ENV_WORKERS: "2",
        contract.ENV_TERMINATION_LOG: contract.DEFAULT_TERMINATION_LOG,
    }


def run_container(image: str, containers: list[str], *, env: dict[str, str], artifact_dir: Path,
                  artifact_mode: str = "ro", termination_log: Path | None = None,
                  command: tuple[str, ...] = ()) -> str:
    """Start a detached container like a restricted pod; return its id (removed at teardown)."""
    uid = f"{contract.IMAGE_UID}:{contract.IMAGE_UID}"
    args = ["run", "--detach", "--network", "host", "--read-only", "--tmpfs",
            contract.SCRATCH_MOUNT, "--user", uid,
            "--volume", f"{artifact_dir}:{contract.ARTIFACT_MOUNT}:{artifact_mode}"]
    if termination_log is not None:
        args += ["--volume", f"{termination_log}:{contract.DEFAULT_TERMINATION_LOG}"]
    for name, value in env.items():
        args += ["--env", f"{name}={value}"]
    container_id = docker(*args, image, *command).strip()
    containers.append(container_id)
    return container_id


def wait_ready(port: int, container_id: str) -> None:
    """Poll /v2/health/ready until 200; fail early, with the logs, if the container stops."""
    deadline = time.monotonic() + READY_WAIT_SECONDS
    while time.monotonic() < deadline:
        try:
            if requests.get(f"http://127.0.0.1:{port}{contract.PATH_READY}", timeout=2).ok:
                return
        except (requests.ConnectionError, requests.Timeout):
            pass  # not listening yet, or accepted while the workers are still loading
        if docker("inspect", "--format", "{{.State.Running}}", container_id).strip() != "true":
            pytest.fail(f"container stopped before ready:\n{container_logs(container_id)}")
        time.sleep(0.5)
    pytest.fail(f"not ready in {READY_WAIT_SECONDS}s:\n{container_logs(container_id)}")


def wait_exit(container_id: str) -> int:
    return int(docker("wait", container_id, timeout=EXIT_WAIT_SECONDS).strip())


def assert_predicts_like_the_model(port: int, trained: TrainedModel) -> None:
    base = f"http://127.0.0.1:{port}"
    expected = trained.estimator.predict(trained.rows).tolist()
    v1 = requests.post(f"{base}/v1/models/{MODEL_NAME}:predict",
                       json={"instances": trained.rows.tolist()}, timeout=10)
    assert v1.status_code == 200, v1.text
    assert v1.json()["predictions"] == expected
    tensor = {"name": "input-0", "shape": list(trained.rows.shape), "datatype": "FP64",
              "data": trained.rows.ravel().tolist()}
    v2 = requests.post(f"{base}/v2/models/{MODEL_NAME}/infer", json={"inputs": [tensor]}, timeout=10)
    assert v2.status_code == 200, v2.text
    (output,) = v2.json()["outputs"]
    assert output["data"] == expected and output["shape"][0] == len(expected)


def test_image_config_is_non_root_without_entrypoint(images: Images) -> None:
    config = json.loads(docker("image", "inspect", "--format", "{{json .Config}}", images.serving))
    assert config["User"] == f"{contract.IMAGE_UID}:{contract.IMAGE_UID}"
    assert config.get("Entrypoint") is None
    assert config["Cmd"] == list(contract.SERVING_COMMAND)


def test_serves_a_host_trained_model_over_v1_and_v2(images, containers, trained, free_port,
                                                    tmp_path) -> None:
    uri = f"file://{contract.ARTIFACT_MOUNT}/{ARTIFACT_FILE}"
    container_id = run_container(images.serving, containers, artifact_dir=trained.directory,
                                 env=serving_env(free_port, uri, trained.sha256))
    wait_ready(free_port, container_id)
    assert_predicts_like_the_model(free_port, trained)
    metrics = requests.get(f"http://127.0.0.1:{free_port}{contract.PATH_METRICS}", timeout=10).text
    assert f"{contract.METRIC_REQUESTS}{{" in metrics and trained.sha256 in metrics


def test_wrong_sha256_refuses_to_start_and_says_why(images, containers, trained, free_port,
                                                   tmp_path) -> None:
    termination_log = tmp_path / "termination-log"
    termination_log.touch(mode=0o666)
    termination_log.chmod(0o666)  # the container writes it as uid 65532
    uri = f"file://{contract.ARTIFACT_MOUNT}/{ARTIFACT_FILE}"
    container_id = run_container(images.serving, containers, artifact_dir=trained.directory,
                                 env=serving_env(free_port, uri, WRONG_SHA256),
                                 termination_log=termination_log)
    assert wait_exit(container_id) != 0
    message = termination_log.read_text()
    assert message.startswith("ChecksumMismatch: "), message
    assert trained.sha256 in message and WRONG_SHA256 in message
    assert message.count("\n") <= 1


@pytest.fixture
def artifact_http_server(trained) -> Iterator[http.server.ThreadingHTTPServer]:
    """The trained artifact over HTTP on loopback (started and stopped by the test)."""
    handler = functools.partial(_QuietHandler, directory=str(trained.directory))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    thread.join(timeout=10)
    server.server_close()


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args) -> None:  # noqa: A002 - the base class's name
        pass


def test_fetch_init_command_then_serve_from_the_fetched_file(images, containers, trained,
                                                             artifact_http_server, free_port,
                                                             tmp_path) -> None:
    shared = tmp_path / "artifact-volume"  # what an emptyDir shared by both containers holds
    shared.mkdir(mode=0o777)
    shared.chmod(0o777)
    uri = f"http://127.0.0.1:{artifact_http_server.server_address[1]}/{ARTIFACT_FILE}"
    env = serving_env(free_port, uri, trained.sha256)
    fetcher = run_container(images.serving, containers, env=env, artifact_dir=shared,
                            artifact_mode="rw", command=contract.FETCH_COMMAND)
    assert wait_exit(fetcher) == 0, container_logs(fetcher)
    fetched = [p for p in shared.iterdir() if p.is_file()]
    assert [hashlib.sha256(p.read_bytes()).hexdigest() for p in fetched] == [trained.sha256]
    artifact_http_server.shutdown()  # the server must reuse the verified file, not download
    server = run_container(images.serving, containers, env=env, artifact_dir=shared)
    wait_ready(free_port, server)
    assert_predicts_like_the_model(free_port, trained)
