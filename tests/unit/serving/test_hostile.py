"""Hostile requests against the real server (gunicorn on loopback): 4xx, never 5xx, worker lives.

Each case from the security review (shape products, a 4300-digit header length, repeated or
unknown outputs, huge answers, half-sent and trickling requests) is sent to a real server; the
answers must be 4xx, no request may be counted as a 5xx, the worker pids stay the same, and with
threads + 2 stalled connections open a normal request is still answered within a second.
"""

from __future__ import annotations

import json
import socket
import time

import requests
from serving_support import IRIS_ROW, metric
from test_process import V2_BODY, start

BIG = 2**62


def _v2(shape, data, datatype="FP64", **extra) -> dict:
    return {"inputs": [{"name": "x", "shape": shape, "datatype": datatype, "data": data}], **extra}


HOSTILE = [
    ("shape [2**62, 0]", _v2([BIG, 0], []), {}),
    ("shape [0, 2**62]", _v2([0, BIG], []), {}),
    ("shape [2**64, 0]", _v2([2**64, 0], []), {}),
    ("shape product beyond the body", _v2([2**30, 2**30], [1.0]), {}),
    ("4300-digit header length", V2_BODY, {"Inference-Header-Content-Length": "9" * 4300}),
    ("repeated outputs", _v2([1, 4], IRIS_ROW, outputs=[{"name": "predict"}] * 1000), {}),
    ("unknown output", _v2([1, 4], IRIS_ROW, outputs=[{"name": "__class__"}]), {}),
]


def _pids(server) -> set[int]:
    return {int(p.name.split("_")[-1].split(".")[0]) for p in server.metrics_dir.glob("counter_*.db")}


def test_hostile_requests_are_4xx_and_the_workers_survive(artifacts, tmp_path):
    server = start(tmp_path, artifacts.iris.env("iris", "1"))
    url = f"{server.url}/v2/models/iris/infer"
    try:
        assert requests.post(url, json=V2_BODY, timeout=10).status_code == 200
        for name, body, headers in HOSTILE:
            answer = requests.post(url, data=json.dumps(body), timeout=60,
                                   headers={"Content-Type": "application/json", **headers})
            assert 400 <= answer.status_code < 500, (name, answer.status_code, answer.text[:300])
            assert "error" in answer.json(), name
        assert requests.post(url, json=V2_BODY, timeout=10).status_code == 200
        text = server.metrics()
        five = sum(metric(text, "modelops_requests_total", code=code) or 0
                   for code in ("500", "502", "503", "504"))
        assert five == 0, text
        assert "Traceback" not in server.log.read_text()
    finally:
        assert server.stop() == 0


def _stall(port: int, payload: bytes) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=5)
    sock.sendall(payload)
    return sock


STALLS = [
    b"GET /v2/health/live HTTP/1.1\r\nHost: x\r\n",
    b"POST /v2/models/iris/infer HTTP/1.1\r\nHost: x\r\nContent-Length: 1000000\r\n\r\n{",
    b"POST /v2/models/iris/infer HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\n{\"inp",
]


def test_stalled_connections_hold_no_thread(artifacts, tmp_path):
    threads = 2
    server = start(tmp_path, artifacts.iris.env("iris", "1"), workers=1, threads=threads)
    port = int(server.url.rsplit(":", 1)[1])
    stalled = [_stall(port, STALLS[i % len(STALLS)]) for i in range((threads + 2) * 2)]
    try:
        time.sleep(1.0)
        for _ in range(5):
            started = time.monotonic()
            answer = requests.post(f"{server.url}/v2/models/iris/infer", json=V2_BODY, timeout=5)
            assert answer.status_code == 200
            assert time.monotonic() - started < 1.0
    finally:
        for sock in stalled:
            sock.close()
        assert server.stop() == 0


def test_a_stalled_request_is_closed_at_the_read_deadline(artifacts, tmp_path, monkeypatch):
    server = start(tmp_path, artifacts.iris.env("iris", "1"), workers=1, threads=2)
    port = int(server.url.rsplit(":", 1)[1])
    sock = _stall(port, STALLS[0])
    try:
        sock.settimeout(30)
        started = time.monotonic()
        assert sock.recv(100) == b""  # closed by the server, nothing answered
        assert 8.0 < time.monotonic() - started < 20.0
    finally:
        sock.close()
        assert server.stop() == 0


def test_an_answer_beyond_the_output_bound_is_413_before_predicting(iris, monkeypatch):
    from modelops.serving import dataplane

    monkeypatch.setattr(dataplane, "MAX_OUTPUT_VALUES", 29)
    body = _v2([10, 4], IRIS_ROW * 10, outputs=[{"name": "predict_proba"}])
    answer = iris.post("/v2/models/iris/infer", json=body)
    assert answer.status_code == 413 and "29" in answer.json["error"]
    assert iris.post("/v2/models/iris/infer", json=_v2([10, 4], IRIS_ROW * 10)).status_code == 200


def test_nan_in_an_answer_is_sent_as_null():
    import numpy as np

    from modelops.serving.routes import json_response

    body = json_response({"data": [float("nan"), float("inf"), -float("inf"), 1.5,
                                   np.float64("nan")]}).get_data()
    assert json.loads(body) == {"data": [None, None, None, 1.5, None]}


def test_a_worker_still_loading_answers_503_counted_as_not_ready(artifacts, tmp_path):
    """S1: the 503 of a loading worker is labelled code="not_ready", never a 5xx error."""
    import threading

    from prometheus_client import CollectorRegistry, generate_latest

    from modelops.serving.app import build_model_app, load_from_settings
    from modelops.serving.settings import ServingSettings

    settings = ServingSettings.from_env(artifacts.iris.env("iris", "1"))
    release = threading.Event()

    def slow_load():
        release.wait(30)
        return load_from_settings(settings)

    registry = CollectorRegistry()
    app = build_model_app(settings, registry=registry, load=slow_load, on_failure=lambda f: None,
                          feedback_path=tmp_path / "feedback.sqlite3")
    client = app.test_client()
    assert client.post("/v2/models/iris/infer", json=V2_BODY).status_code == 503
    assert client.post("/v1/models/iris:predict", json={"instances": [IRIS_ROW]}).status_code == 503
    text = generate_latest(registry).decode()
    assert metric(text, "modelops_requests_total", code="not_ready", protocol="v2") == 1.0
    assert metric(text, "modelops_requests_total", code="not_ready", protocol="v1") == 1.0
    assert metric(text, "modelops_requests_total", code="503") is None
    release.set()
