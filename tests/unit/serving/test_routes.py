"""The HTTP routes through Flask's test client: protocols, errors, readiness, metrics, OpenAPI."""

from __future__ import annotations

import gzip
import io
import json
import threading
from importlib import resources

import numpy as np
import pytest
import yaml
from prometheus_client import CollectorRegistry
from serving_support import IRIS_ROW, metric

from modelops.serving.app import build_model_app, load_from_settings
from modelops.serving.settings import ServingSettings

V2_ROW = {"inputs": [{"name": "x", "shape": [1, 4], "datatype": "FP64", "data": IRIS_ROW}]}


def test_health_and_metadata(iris):
    assert iris.get("/v2/health/live").get_json() == {"live": True}
    assert iris.get("/v2/health/ready").get_json() == {"ready": True}
    server = iris.get("/v2").get_json()
    assert server["name"] == "modelops" and server["extensions"] == []
    assert iris.get("/v1/models").get_json() == {"models": ["iris"]}
    assert iris.get("/v1/models/iris").get_json() == {"name": "iris", "ready": True}
    assert iris.get("/v2/models/iris/ready").get_json() == {"name": "iris", "ready": True}
    assert iris.get("/v2/models/iris/versions/1/ready").status_code == 200
    metadata = iris.get("/v2/models/iris").get_json()
    assert metadata == iris.get("/v2/models/iris/versions/1").get_json()
    assert metadata["inputs"] == [{"name": "input-0", "datatype": "FP64", "shape": [-1, 4]}]
    assert [o["name"] for o in metadata["outputs"]] == ["predict", "predict_proba"]


def test_v1_predict(iris):
    response = iris.post("/v1/models/iris:predict", json={"instances": [IRIS_ROW, [6.7, 3.0, 5.2, 2.3]]})
    assert response.status_code == 200 and response.get_json() == {"predictions": [0, 2]}
    assert len(response.headers["X-Request-Id"]) == 32


def test_v1_predict_refuses_a_steps_parameter_that_is_not_true_or_false(iris):
    """Found by the OpenAPI fuzz test: `?steps=` is an enum in the document."""
    body = {"instances": [IRIS_ROW]}
    assert iris.post("/v1/models/iris:predict?steps=false", json=body).status_code == 200
    refused = iris.post("/v1/models/iris:predict?steps=k(v", json=body)
    assert refused.status_code == 400
    assert "query parameter steps must be true or false" in refused.get_json()["error"]


def test_v2_infer_echoes_the_id(iris):
    response = iris.post("/v2/models/iris/infer", json={**V2_ROW, "id": "req-7"})
    body = response.get_json()
    assert response.status_code == 200 and response.headers["X-Request-Id"] == "req-7"
    assert body == {"model_name": "iris", "model_version": "1", "id": "req-7",
                    "outputs": [{"name": "predict", "shape": [1], "datatype": "INT64", "data": [0]}]}
    assert iris.post("/v2/models/iris/versions/1/infer", json=V2_ROW).status_code == 200
    header_id = iris.post("/v2/models/iris/infer", json=V2_ROW, headers={"X-Request-Id": "h-1"})
    assert header_id.get_json()["id"] == "h-1"


def test_v2_requested_outputs(iris):
    body = iris.post("/v2/models/iris/infer", json={**V2_ROW, "outputs": [{"name": "predict_proba"}]}).get_json()
    assert body["outputs"][0]["name"] == "predict_proba" and body["outputs"][0]["shape"] == [1, 3]


def test_v2_binary_tensor_extension(iris):
    raw = np.array([IRIS_ROW], dtype="<f4").tobytes()
    header = json.dumps({"inputs": [{"name": "x", "shape": [1, 4], "datatype": "FP32",
                                     "parameters": {"binary_data_size": len(raw)}}]}).encode()
    response = iris.post("/v2/models/iris/infer", data=header + raw,
                         headers={"Inference-Header-Content-Length": str(len(header)),
                                  "Content-Type": "application/octet-stream"})
    assert response.status_code == 200 and response.get_json()["outputs"][0]["data"] == [0]


def test_compressed_and_chunked_bodies(iris):
    gz = iris.post("/v1/models/iris:predict", data=gzip.compress(json.dumps({"instances": [IRIS_ROW]}).encode()),
                   headers={"Content-Encoding": "gzip", "Content-Type": "application/json"})
    assert gz.status_code == 200 and gz.get_json() == {"predictions": [0]}
    stream = io.BytesIO(json.dumps(V2_ROW).encode())
    chunked = iris.post("/v2/models/iris/infer", input_stream=stream,
                        headers={"Transfer-Encoding": "chunked", "Content-Type": "application/json"})
    assert chunked.status_code == 200


def test_predict_proba_method(artifacts, make_app):
    client = make_app(artifacts.iris, MODELOPS_METHOD="predict_proba").test_client()
    predictions = client.post("/v1/models/iris:predict", json={"instances": [IRIS_ROW]}).get_json()["predictions"]
    assert len(predictions) == 1 and len(predictions[0]) == 3 and predictions[0][0] > 0.9


def test_regressor(artifacts, make_app):
    client = make_app(artifacts.forest, name="forest").test_client()
    response = client.post("/v1/models/forest:predict", json={"instances": [[0.1] * 5, [None] * 5]})
    assert response.status_code == 200 and len(response.get_json()["predictions"]) == 2


ERRORS = [
    ("/v1/models/iris:predict", {"data": b"{not json"}, 400, "malformed JSON"),
    ("/v1/models/iris:predict", {"json": {"instances": [[1, 2, 3]]}}, 400, "expected 4 features per row, got 3"),
    ("/v1/models/iris:predict", {"json": {"instances": [[1, 2, "x", 4]]}}, 400, "row 0, feature 2 is a string"),
    ("/v1/models/iris:predict", {"json": {"instances": [[1, None, 3, 4]]}}, 400, "null/NaN"),
    ("/v1/models/iris:predict", {"data": b'{"instances": [[1, NaN, 3, 4]]}'}, 400, "null/NaN"),
    ("/v1/models/iris:predict", {"data": b'{"instances": [[1, 1e999, 3, 4]]}'}, 400, "infinite"),
    ("/v1/models/iris:predict", {"json": {"rows": []}}, 400, "missing 'instances'"),
    ("/v1/models/other:predict", {"json": {"instances": [IRIS_ROW]}}, 404, "model 'other' is not served here"),
    ("/v2/models/iris/infer", {"json": {"inputs": [{"name": "x", "shape": [1, 4], "datatype": "INT64",
                                                    "data": [1.5, 2, 3, 4]}]}}, 400, "not valid for datatype INT64"),
    ("/v2/models/iris/infer", {"json": {"inputs": [{"name": "x", "shape": [2, 4], "datatype": "FP64",
                                                    "data": IRIS_ROW}]}}, 400, "needs 8 values, data has 4"),
    ("/v2/models/iris/infer", {"json": {"inputs": [{"name": "x", "shape": [1, 4], "datatype": "FP99",
                                                    "data": IRIS_ROW}]}}, 400, "datatype 'FP99'"),
    ("/v2/models/iris/infer", {"json": {**V2_ROW, "outputs": [{"name": "transform"}]}}, 400, "unknown output"),
    ("/v2/models/iris/infer", {"json": {**V2_ROW, "parameters": {"return_steps": "yes"}}}, 400, "return_steps"),
    ("/v2/models/iris/versions/9/infer", {"json": V2_ROW}, 404, "has no version '9'"),
    ("/v2/models/nope/infer", {"json": V2_ROW}, 404, "not served here"),
    ("/v2/models/iris/infer", {"json": V2_ROW, "headers": {"X-Request-Id": "x" * 300}}, 400, "request id"),
    ("/v2/models/iris/infer", {"json": {**V2_ROW, "id": "a\nb"}}, 400, "request id must be text"),
    ("/v2/models/iris/infer", {"json": {**V2_ROW, "id": "\u65e5"}}, 400, "nothing beyond Latin-1"),
    ("/v2/models/iris/infer", {"data": b"{}", "headers": {"Content-Encoding": "br"}}, 415, "'br'"),
]


@pytest.mark.parametrize(("path", "kwargs", "status", "fragment"), ERRORS)
def test_bad_requests_get_a_json_4xx_naming_the_problem(iris, path, kwargs, status, fragment):
    response = iris.post(path, **kwargs)
    assert response.status_code == status
    assert response.is_json and fragment in response.get_json()["error"]


@pytest.mark.parametrize(("method", "path", "status"), [
    ("get", "/v2/models/iris/infer", 405), ("post", "/v2/health/live", 405),
    ("get", "/no/such/route", 404), ("get", "/v2/models/nope", 404), ("get", "/v2/models/iris/versions/2", 404),
    ("get", "/v1/models/nope", 404), ("get", "/v2/models/nope/ready", 404),
])
def test_routing_errors_are_json(iris, method, path, status):
    response = getattr(iris, method)(path)
    assert response.status_code == status and "error" in response.get_json()


def test_body_limits(artifacts, make_app):
    client = make_app(artifacts.iris, MODELOPS_MAX_BODY_BYTES="2048").test_client()
    big = json.dumps({"instances": [IRIS_ROW] * 200}).encode()
    assert client.post("/v1/models/iris:predict", data=big).status_code == 413
    bomb = gzip.compress(b" " * 100_000 + json.dumps({"instances": [IRIS_ROW]}).encode())
    gz = client.post("/v1/models/iris:predict", data=bomb, headers={"Content-Encoding": "gzip"})
    assert gz.status_code == 413 and "decompressed" in gz.get_json()["error"]
    chunked = client.post("/v1/models/iris:predict", input_stream=io.BytesIO(big),
                          headers={"Transfer-Encoding": "chunked"})
    assert chunked.status_code == 413


def test_model_failure_is_500_and_the_app_keeps_serving(artifacts, make_app):
    client = make_app(artifacts.raising).test_client()
    failed = client.post("/v1/models/iris:predict", json={"instances": [[-1, 1, 1, 1]]})
    assert failed.status_code == 500 and "negative first feature" in failed.get_json()["error"]
    assert client.post("/v1/models/iris:predict", json={"instances": [IRIS_ROW]}).status_code == 200
    text = client.get("/metrics").get_data(as_text=True)
    assert metric(text, "modelops_model_errors_total", model="iris", version="1") == 1
    assert metric(text, "modelops_requests_total", protocol="v1", code="500") == 1


def test_not_ready_is_503_until_loaded(artifacts):
    settings = ServingSettings.from_env(artifacts.iris.env())
    release = threading.Event()

    def slow_load():
        release.wait(timeout=60)
        return load_from_settings(settings)

    app = build_model_app(settings, registry=CollectorRegistry(), load=slow_load, on_failure=print)
    client = app.test_client()
    assert client.get("/v2/health/live").status_code == 200
    for path in ("/v2/health/ready", "/v2/models/iris/ready", "/v1/models/iris", "/v2/models/iris"):
        response = client.get(path)
        assert response.status_code == 503 and "still loading" in response.get_json()["error"]
    response = client.post("/v2/models/iris/infer", json=V2_ROW)
    assert response.status_code == 503 and "still loading" in response.get_json()["error"]
    release.set()
    for _ in range(600):
        if client.get("/v2/health/ready").status_code == 200:
            break
        threading.Event().wait(0.05)
    assert client.post("/v2/models/iris/infer", json=V2_ROW).status_code == 200


def test_metrics_count_every_inference_request_exactly(iris):
    for _ in range(7):
        iris.post("/v2/models/iris/infer", json=V2_ROW)
    for _ in range(3):
        iris.post("/v1/models/iris:predict", json={"instances": [IRIS_ROW]})
    for _ in range(2):
        iris.post("/v1/models/iris:predict", json={"instances": [[1]]})
    iris.post("/v2/models/nope/infer", json=V2_ROW)
    iris.get("/v2/health/ready")  # health checks are not inference requests
    text = iris.get("/metrics").get_data(as_text=True)
    labels = {"model": "iris", "version": "1"}
    assert metric(text, "modelops_requests_total", protocol="v2", code="200", **labels) == 7
    assert metric(text, "modelops_requests_total", protocol="v1", code="200", **labels) == 3
    assert metric(text, "modelops_requests_total", protocol="v1", code="400", **labels) == 2
    assert metric(text, "modelops_requests_total", protocol="v2", code="404", **labels) == 1
    assert metric(text, "modelops_request_duration_seconds_count", protocol="v2", **labels) == 8
    assert metric(text, "modelops_request_duration_seconds_count", protocol="v1", **labels) == 5
    assert metric(text, "modelops_inflight_requests", **labels) == 0
    assert metric(text, "modelops_model_errors_total", **labels) == 0


def test_openapi_document_is_served_as_json_and_yaml(iris):
    shipped = resources.files("modelops.serving").joinpath("openapi.yaml").read_text()
    assert iris.get("/openapi.yaml").get_data(as_text=True) == shipped
    document = iris.get("/openapi.json").get_json()
    assert document == yaml.safe_load(shipped)
    assert {"/v1/models/{name}:predict", "/v2/models/{name}/infer", "/metrics"} <= set(document["paths"])


def test_v2_infer_is_served_without_flask_dispatch(iris_app):
    for endpoint in [e for e in iris_app.view_functions if e.startswith("v2_infer:")]:
        iris_app.view_functions[endpoint] = lambda **_: pytest.fail("Flask dispatched v2 infer")
    client = iris_app.test_client()
    assert client.post("/v2/models/iris/infer", json=V2_ROW).get_json()["outputs"][0]["data"] == [0]
    assert client.post("/v2/models/iris/versions/1/infer", json=V2_ROW).status_code == 200
    assert client.get("/v2/models/iris/infer").status_code == 405  # everything else: Flask
