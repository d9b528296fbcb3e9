"""The real server: `python -m modelops.serving` under gunicorn on loopback, over real HTTP.

Exact metric counts across 2 workers, the spread of connections over the workers (printed with
-s), SIGTERM during load with no accepted request lost, termination messages from the master
(checksum) and from a worker (sklearn version), the router in front of two model servers, and
tritonclient (a third-party OIP v2 client) against the server.
"""

from __future__ import annotations

import gzip
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest
import requests
import sklearn
import sklearn.base
from prometheus_client.mmap_dict import MmapedDict
from serving_support import IRIS_ROW, dump, iris_data, metric, train_iris
from sklearn.linear_model import LinearRegression

from tests.ports import free_port

HERE = Path(__file__).parent
REPO = HERE.parents[2]
START_TIMEOUT = 90.0
V2_BODY = {"inputs": [{"name": "x", "shape": [1, 4], "datatype": "FP64", "data": IRIS_ROW}]}


@dataclass
class Server:
    process: subprocess.Popen
    url: str
    metrics_dir: Path
    termination_log: Path
    home: Path
    log: Path
    stopped: bool = field(default=False)

    def metrics(self) -> str:
        return requests.get(f"{self.url}/metrics", timeout=10).text

    def stop(self, timeout: float = 60.0) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout=timeout)


def start(tmp_path: Path, env: dict[str, str], *, workers: int = 2, threads: int = 4,
          wait: bool = True) -> Server:
    port = free_port()
    run_dir = tmp_path / f"server-{port}"
    run_dir.mkdir()
    server_env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("MODELOPS_")},
        "PYTHONPATH": os.pathsep.join([str(HERE), str(REPO)]), "HOME": str(run_dir / "home"),
        "PROMETHEUS_MULTIPROC_DIR": str(run_dir / "metrics"), "MODELOPS_HOST": "127.0.0.1",
        "MODELOPS_PORT": str(port), "MODELOPS_WORKERS": str(workers), "MODELOPS_THREADS": str(threads),
        "MODELOPS_TERMINATION_LOG": str(run_dir / "termination-log"),
        "MODELOPS_GRACEFUL_TIMEOUT_SECONDS": "20", **env,
    }
    log = run_dir / "server.log"
    process = subprocess.Popen([sys.executable, "-m", "modelops.serving"], env=server_env, cwd=run_dir,
                               stdout=log.open("wb"), stderr=subprocess.STDOUT)
    server = Server(process, f"http://127.0.0.1:{port}", run_dir / "metrics",
                    run_dir / "termination-log", run_dir / "home", log)
    _STARTED.append(server)
    if wait:
        try:
            wait_ready(server)
        except BaseException:
            server.process.kill()  # never leave a server behind when it did not come up
            server.process.wait(timeout=30)
            raise
    return server


_STARTED: list[Server] = []


@pytest.fixture(autouse=True)
def _no_server_left_behind():
    """Kill any server a test started and did not stop (e.g. when an assertion failed)."""
    earlier = len(_STARTED)
    yield
    for server in _STARTED[earlier:]:
        if server.process.poll() is None:
            server.process.kill()
            server.process.wait(timeout=30)


def wait_ready(server: Server) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        assert server.process.poll() is None, server.log.read_text()
        try:
            if requests.get(f"{server.url}/v2/health/ready", timeout=5).status_code == 200:
                return
        except requests.RequestException:
            pass
        time.sleep(0.1)
    raise AssertionError(f"server not ready in {START_TIMEOUT} s:\n{server.log.read_text()}")


@pytest.fixture(scope="module")
def model_server(artifacts, tmp_path_factory):
    """The raising classifier (answers like iris, raises for negative first features), 2 workers."""
    server = start(tmp_path_factory.mktemp("model"), artifacts.raising.env("iris", "7"))
    yield server
    assert server.stop() == 0


def requests_by_worker(metrics_dir: Path) -> dict[int, float]:
    """modelops_requests_total per worker pid, read from each worker's multiprocess file."""
    counts: dict[int, float] = {}
    for path in metrics_dir.glob("counter_*.db"):
        pid = int(path.stem.split("_")[-1])
        for key, value, *_ in MmapedDict.read_all_values_from_file(str(path)):
            if json.loads(key)[1] == "modelops_requests_total":
                counts[pid] = counts.get(pid, 0) + value
    return counts


def post_many(url: str, bodies: list[tuple[str, dict]], threads: int = 4) -> Counter:
    """POST every (path, body) on a fresh connection each; count (path kind, status)."""
    results: Counter = Counter()
    lock = threading.Lock()
    chunks = [bodies[i::threads] for i in range(threads)]

    def run(chunk):
        for path, body in chunk:
            status = requests.post(f"{url}{path}", json=body, timeout=30).status_code
            with lock:
                results[(path.split("/")[1], status)] += 1

    workers = [threading.Thread(target=run, args=(chunk,)) for chunk in chunks]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=120)
    return results


def test_exact_counts_across_workers_and_spread(model_server, capsys):
    before = model_server.metrics()
    labels = {"model": "iris", "version": "7"}
    start_counts = {key: metric(before, "modelops_requests_total", protocol=p, code=c, **labels) or 0
                    for key, (p, c) in {"v2ok": ("v2", "200"), "v1ok": ("v1", "200"),
                                        "v1bad": ("v1", "400"), "v2err": ("v2", "500")}.items()}
    errors_before = metric(before, "modelops_model_errors_total", **labels) or 0
    by_worker_before = requests_by_worker(model_server.metrics_dir)
    bodies = ([("/v2/models/iris/infer", V2_BODY)] * 200
              + [("/v1/models/iris:predict", {"instances": [IRIS_ROW]})] * 60
              + [("/v1/models/iris:predict", {"instances": [[1, 2]]})] * 20
              + [("/v2/models/iris/infer", {"inputs": [{"name": "x", "shape": [1, 4], "datatype": "FP64",
                                                         "data": [-1, 1, 1, 1]}]})] * 20)
    results = post_many(model_server.url, bodies)
    assert results == Counter({("v2", 200): 200, ("v1", 200): 60, ("v1", 400): 20, ("v2", 500): 20})
    after = model_server.metrics()
    got = {"v2ok": ("v2", "200"), "v1ok": ("v1", "200"), "v1bad": ("v1", "400"), "v2err": ("v2", "500")}
    deltas = {key: metric(after, "modelops_requests_total", protocol=p, code=c, **labels) - start_counts[key]
              for key, (p, c) in got.items()}
    assert deltas == {"v2ok": 200, "v1ok": 60, "v1bad": 20, "v2err": 20}
    assert metric(after, "modelops_model_errors_total", **labels) - errors_before == 20
    assert metric(after, "modelops_inflight_requests", **labels) == 0
    assert metric(after, "modelops_artifact", format="joblib", **labels) == 1
    per_worker = {pid: count - by_worker_before.get(pid, 0)
                  for pid, count in requests_by_worker(model_server.metrics_dir).items()}
    per_worker = {pid: count for pid, count in per_worker.items() if count}
    with capsys.disabled():
        print(f"\nrequests per worker pid (2 workers, 300 requests, fresh connection each): {per_worker}")
    assert len(per_worker) == 2 and sum(per_worker.values()) == 300
    # The workers survived the model's exceptions; nothing was written to $HOME (read-only root).
    assert requests.post(f"{model_server.url}/v2/models/iris/infer", json=V2_BODY, timeout=10).status_code == 200
    assert not model_server.home.exists()


def chunks(data: bytes, size: int = 65536):
    """A generator body: requests sends it chunked, with no Content-Length."""
    for start in range(0, len(data), size):
        yield data[start: start + size]


def test_body_limit_over_real_http(model_server):
    url = f"{model_server.url}/v1/models/iris:predict"
    small = json.dumps({"instances": [IRIS_ROW] * 3}).encode()
    assert requests.post(url, data=chunks(small, 7), timeout=30).json() == {"predictions": [0, 0, 0]}
    big = b'{"instances": [' + b"[5.1, 3.5, 1.4, 0.2], " * 500_000 + b"[5.1, 3.5, 1.4, 0.2]]}"
    assert len(big) > 10 * 1024 * 1024
    bomb = gzip.compress(b" " * (11 * 1024 * 1024) + small)
    cases = {"content-length": {"data": big}, "chunked": {"data": chunks(big)},
             "gzip": {"data": bomb, "headers": {"Content-Encoding": "gzip"}},
             "gzip chunked": {"data": chunks(bomb), "headers": {"Content-Encoding": "gzip"}}}
    for case, kwargs in cases.items():
        response = requests.post(url, timeout=60, **kwargs)
        assert response.status_code == 413 and "limit" in response.json()["error"], case
    assert requests.post(url, json={"instances": [IRIS_ROW]}, timeout=30).status_code == 200


def test_tritonclient_speaks_v2_to_the_server(model_server):
    httpclient = pytest.importorskip("tritonclient.http", reason="tritonclient[http] not installed")
    client = httpclient.InferenceServerClient(url=model_server.url.removeprefix("http://"))
    assert client.is_server_live() and client.is_server_ready() and client.is_model_ready("iris")
    metadata = client.get_model_metadata("iris")
    assert metadata["inputs"][0]["shape"] == [-1, 4]
    tensor = httpclient.InferInput("input-0", [2, 4], "FP32")
    tensor.set_data_from_numpy(np.array([IRIS_ROW, [6.7, 3.0, 5.2, 2.3]], dtype=np.float32))  # binary
    result = client.infer("iris", [tensor], request_id="triton-1",
                          outputs=[httpclient.InferRequestedOutput("predict", binary_data=False)])
    assert result.as_numpy("predict").tolist() == [0, 2]
    assert result.get_response()["id"] == "triton-1"
    json_tensor = httpclient.InferInput("input-0", [1, 4], "FP64")
    json_tensor.set_data_from_numpy(np.array([IRIS_ROW]), binary_data=False)
    assert client.infer("iris", [json_tensor]).as_numpy("predict").tolist() == [0]


def test_a_killed_worker_is_replaced_and_no_count_is_lost(model_server):
    before = model_server.metrics()
    total = metric(before, "modelops_requests_total", protocol="v2", code="200", model="iris") or 0
    victim = max(requests_by_worker(model_server.metrics_dir))
    os.kill(victim, signal.SIGKILL)
    deadline = time.monotonic() + START_TIMEOUT
    while victim in live_ready_pids(model_server.metrics_dir) and time.monotonic() < deadline:
        time.sleep(0.05)
    wait_ready(model_server)  # the replacement worker has loaded the model
    assert victim not in live_ready_pids(model_server.metrics_dir)
    assert len(live_ready_pids(model_server.metrics_dir)) == 2
    after = model_server.metrics()
    # The dead worker's counts are kept; its in-flight gauge is not left behind.
    assert metric(after, "modelops_requests_total", protocol="v2", code="200", model="iris") == total
    assert metric(after, "modelops_inflight_requests", model="iris") == 0
    assert post_many(model_server.url, [("/v2/models/iris/infer", V2_BODY)] * 20) == Counter({("v2", 200): 20})


def live_ready_pids(metrics_dir: Path) -> set[int]:
    return {int(p.name.removeprefix("ready-")) for p in metrics_dir.glob("ready-*")}


SLOW_DELAY = 0.05  # SlowClassifier(delay=...) in conftest


def test_sigterm_during_load_loses_no_accepted_request(artifacts, tmp_path):
    server = start(tmp_path, artifacts.slow.env("slow", "1"))
    outcomes: list[tuple[float, float, object]] = []
    lock, stop = threading.Lock(), threading.Event()

    def load() -> None:
        for _ in range(500):  # bounded
            started = time.monotonic()
            try:
                outcome: object = requests.post(f"{server.url}/v1/models/slow:predict",
                                                json={"instances": [IRIS_ROW]}, timeout=30).status_code
            except requests.ConnectionError as error:
                outcome = error
            with lock:
                outcomes.append((started, time.monotonic(), outcome))
            if stop.is_set() or isinstance(outcome, Exception):
                return

    clients = [threading.Thread(target=load) for _ in range(8)]
    for client in clients:
        client.start()
    deadline = time.monotonic() + START_TIMEOUT
    while len(outcomes) < 40 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert len(outcomes) >= 40, server.log.read_text()
    signalled = time.monotonic()
    server.process.send_signal(signal.SIGTERM)
    stop.set()
    for client in clients:
        client.join(timeout=60)
    assert server.process.wait(timeout=60) == 0
    # A connection refused was never accepted: its thread started just before SIGTERM but
    # connected after the listener closed (seen on a loaded machine). A reset that came back
    # sooner than the model's own delay never reached the model either: the connection was
    # still in the kernel's accept queue when the listener closed (seen: reset after 4.8 ms).
    refused = [o for o in outcomes if isinstance(o[2], requests.ConnectionError)
               and ("Connection refused" in str(o[2]) or o[1] - o[0] < SLOW_DELAY)]
    before = [o for o in outcomes if o[0] < signalled and o not in refused]
    in_flight = [o for o in before if o[1] > signalled]
    assert in_flight, "no request was in flight at SIGTERM; the test proved nothing"
    assert all(outcome == 200 for _, _, outcome in before), [o for o in before if o[2] != 200]


def test_checksum_mismatch_stops_the_master_with_a_reason(artifacts, tmp_path):
    server = start(tmp_path, artifacts.iris.env(MODELOPS_ARTIFACT_SHA256="0" * 64), wait=False)
    assert server.process.wait(timeout=60) == 1
    assert server.termination_log.read_text() == (
        f"ChecksumMismatch: artifact sha256 is {artifacts.iris.sha256} but "
        f"MODELOPS_ARTIFACT_SHA256 is {'0' * 64} ({artifacts.iris.path})\n"
    )


def test_worker_load_failure_stops_the_server_with_a_reason(tmp_path, monkeypatch):
    monkeypatch.setattr(sklearn.base, "__version__", "1.3.2")
    old = dump(train_iris(), tmp_path / "old.joblib")
    monkeypatch.undo()
    server = start(tmp_path, old.env(), wait=False)
    assert server.process.wait(timeout=90) == 1, server.log.read_text()
    assert server.termination_log.read_text() == (
        f"SklearnVersionMismatch: model saved with scikit-learn 1.3.2, server has {sklearn.__version__}\n"
    )


def test_router_process_chains_two_model_servers(tmp_path):
    X, y = iris_data()
    iris = train_iris()
    joined = LinearRegression().fit(np.column_stack([X, y]), X[:, 0] * 2 + y)
    first = start(tmp_path, dump(iris, tmp_path / "iris.joblib").env("iris", "1"), workers=1, wait=False)
    second = start(tmp_path, dump(joined, tmp_path / "joined.joblib").env("joined", "1"), workers=1,
                   wait=False)
    steps = [{"name": "a", "model": "iris", "url": first.url},
             {"name": "b", "model": "joined", "url": second.url, "input": "features+previous"}]
    router = start(tmp_path, {"MODELOPS_MODE": "pipeline", "MODELOPS_PIPELINE_NAME": "chain",
                              "MODELOPS_PIPELINE_STEPS": json.dumps(steps),
                              "MODELOPS_PIPELINE_TIMEOUT_SECONDS": "10"}, workers=1, wait=False)
    try:
        for server in (first, second, router):
            wait_ready(server)
        _check_router(router, second, iris, joined)
    finally:
        codes = [router.stop(), first.stop(), second.stop()]
    assert codes == [0, 0, 0]


def _check_router(router: Server, second: Server, iris, joined) -> None:
    rows = np.array([IRIS_ROW, [6.7, 3.0, 5.2, 2.3]])
    expected = joined.predict(np.column_stack([rows, iris.predict(rows)]))
    v1 = requests.post(f"{router.url}/v1/models/chain:predict?steps=true",
                       json={"instances": rows.tolist()}, timeout=30).json()
    assert v1["predictions"] == pytest.approx(expected.tolist()) and v1["steps"]["a"] == [0, 2]
    v2 = requests.post(f"{router.url}/v2/models/chain/infer", timeout=30, json={"inputs": [
        {"name": "x", "shape": [2, 4], "datatype": "FP64", "data": rows.tolist()}]}).json()
    assert v2["model_name"] == "chain" and v2["outputs"][0]["data"] == pytest.approx(expected.tolist())
    assert second.stop() == 0
    failed = requests.post(f"{router.url}/v1/models/chain:predict", json={"instances": [IRIS_ROW]}, timeout=30)
    assert failed.status_code == 502 and "step 'b'" in failed.json()["error"]
    assert "unreachable" in failed.json()["error"]
    text = router.metrics()
    steps = {(step, code): metric(text, "modelops_pipeline_step_requests_total", pipeline="chain",
                                  step=step, code=code) for step, code in (("a", "200"), ("b", "200"), ("b", "502"))}
    assert steps == {("a", "200"): 3, ("b", "200"): 2, ("b", "502"): 1}
    assert metric(text, "modelops_requests_total", model="chain", protocol="v1", code="502") == 1
    assert metric(text, "modelops_requests_total", model="chain", protocol="v2", code="200") == 1
