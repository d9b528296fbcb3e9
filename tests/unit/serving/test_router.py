"""Pipeline mode: the router chains real model servers over loopback HTTP."""

from __future__ import annotations

import json
import threading
from contextlib import contextmanager

import numpy as np
import pytest
from prometheus_client import CollectorRegistry
from serving_support import IRIS_ROW, dump, iris_data, metric
from sklearn.linear_model import LinearRegression, LogisticRegression
from werkzeug.serving import make_server

from modelops.serving.app import build_model_app, build_pipeline_app
from modelops.serving.settings import ServingSettings

ROWS = [IRIS_ROW, [6.7, 3.0, 5.2, 2.3], [5.9, 3.0, 4.2, 1.5]]


@contextmanager
def serving(app):
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, args=(0.02,), daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        server.server_close()


def model_app(artifact, name: str, **env: str):
    settings = ServingSettings.from_env(artifact.env(name, "1", MODELOPS_FEEDBACK_WINDOW="0", **env))
    return build_model_app(settings, registry=CollectorRegistry())


def router(steps: list[dict], timeout: str = "10"):
    settings = ServingSettings.from_env({
        "MODELOPS_MODE": "pipeline", "MODELOPS_PIPELINE_NAME": "chain",
        "MODELOPS_PIPELINE_STEPS": json.dumps(steps), "MODELOPS_PIPELINE_TIMEOUT_SECONDS": timeout,
    })
    return build_pipeline_app(settings, registry=CollectorRegistry()).test_client()


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    """iris classifier (4 features); a 5-feature regressor for features+previous; a 3-feature one
    for probability rows; all trained here so the expected answers can be computed directly."""
    directory = tmp_path_factory.mktemp("pipeline")
    X, y = iris_data()
    iris = LogisticRegression(max_iter=1000).fit(X, y)
    joined = LinearRegression().fit(np.column_stack([X, y]), X[:, 0] * 2 + y)
    proba = LinearRegression().fit(iris.predict_proba(X), y * 1.5)
    return {
        "iris": (iris, dump(iris, directory / "iris.joblib")),
        "joined": (joined, dump(joined, directory / "joined.joblib")),
        "proba": (proba, dump(proba, directory / "proba.joblib")),
    }


@pytest.fixture(scope="module")
def servers(models, artifacts):
    with serving(model_app(models["iris"][1], "iris")) as iris_url, \
         serving(model_app(models["iris"][1], "iris-proba", MODELOPS_METHOD="predict_proba")) as proba_url, \
         serving(model_app(models["joined"][1], "joined")) as joined_url, \
         serving(model_app(models["proba"][1], "proba")) as proba_model_url, \
         serving(model_app(artifacts.raising, "raising")) as raising_url, \
         serving(model_app(artifacts.slow, "slow")) as slow_url:
        yield {"iris": iris_url, "iris-proba": proba_url, "joined": joined_url,
               "proba": proba_model_url, "raising": raising_url, "slow": slow_url}


def step(name: str, model: str, url: str, step_input: str = "previous") -> dict:
    return {"name": name, "model": model, "url": url, "input": step_input}


def test_features_plus_previous(models, servers):
    client = router([step("classify", "iris", servers["iris"]),
                     step("score", "joined", servers["joined"], "features+previous")])
    response = client.post("/v1/models/chain:predict", json={"instances": ROWS})
    X = np.array(ROWS)
    expected = models["joined"][0].predict(np.column_stack([X, models["iris"][0].predict(X)]))
    assert response.status_code == 200
    assert response.get_json()["predictions"] == pytest.approx(expected.tolist())


def test_previous_probability_rows(models, servers):
    client = router([step("classify", "iris-proba", servers["iris-proba"]),
                     step("calibrate", "proba", servers["proba"])])
    body = client.post("/v2/models/chain/infer", json={"inputs": [
        {"name": "x", "shape": [3, 4], "datatype": "FP64", "data": ROWS}]}).get_json()
    expected = models["proba"][0].predict(models["iris"][0].predict_proba(np.array(ROWS)))
    assert body["model_name"] == "chain" and body["outputs"][0]["data"] == pytest.approx(expected.tolist())


def test_every_step_on_request(servers):
    client = router([step("classify", "iris", servers["iris"]),
                     step("score", "joined", servers["joined"], "features+previous")])
    v1 = client.post("/v1/models/chain:predict?steps=true", json={"instances": ROWS}).get_json()
    assert v1["steps"]["classify"] == [0, 2, 1] and v1["steps"]["score"] == v1["predictions"]
    v2 = client.post("/v2/models/chain/infer", json={
        "inputs": [{"name": "x", "shape": [3, 4], "datatype": "FP64", "data": ROWS}],
        "parameters": {"return_steps": True}}).get_json()
    assert [o["name"] for o in v2["outputs"]] == ["predict", "classify.predict", "score.predict"]
    assert v2["outputs"][1]["data"] == [0, 2, 1]


def test_router_health_and_metadata(servers):
    client = router([step("classify", "iris", servers["iris"])])
    assert client.get("/v2/health/ready").status_code == 200
    metadata = client.get("/v2/models/chain").get_json()
    assert metadata["platform"] == "modelops-pipeline"
    assert metadata["steps"] == [{"name": "classify", "model": "iris", "input": "previous"}]
    assert client.get("/v2/models/iris").status_code == 404


def test_a_step_whose_model_raises_is_502(servers):
    client = router([step("boom", "raising", servers["raising"]), step("classify", "iris", servers["iris"])])
    response = client.post("/v1/models/chain:predict", json={"instances": [[-1.0, 1, 1, 1]]})
    assert response.status_code == 502
    assert "step 'boom' (model 'raising') answered HTTP 500: the model raised ValueError" in response.get_json()["error"]


@pytest.mark.parametrize(("steps", "status", "fragment"), [
    (lambda s: [step("classify", "iris", s["iris"]), step("gone", "iris", "http://127.0.0.1:9")],
     502, "step 'gone' at http://127.0.0.1:9/v2/models/iris/infer is unreachable"),
    (lambda s: [step("classify", "iris", s["iris"]), step("wrong", "nosuch", s["iris"])],
     502, "step 'wrong' (model 'nosuch') answered HTTP 404"),
    (lambda s: [step("classify", "iris", s["iris"]), step("misfit", "iris", s["iris"])],
     502, "step 'misfit' (model 'iris') answered HTTP 400: inputs: expected 4 features per row, got 1"),
])
def test_failing_steps_are_502_naming_the_step(servers, steps, status, fragment):
    client = router(steps(servers))
    response = client.post("/v1/models/chain:predict", json={"instances": ROWS})
    assert response.status_code == status and fragment in response.get_json()["error"]


def test_slow_step_is_504(servers):
    client = router([step("sleepy", "slow", servers["slow"])], timeout="0.01")
    response = client.post("/v1/models/chain:predict", json={"instances": ROWS})
    assert response.status_code == 504 and "step 'sleepy'" in response.get_json()["error"]
    text = client.get("/metrics").get_data(as_text=True)
    assert metric(text, "modelops_pipeline_step_requests_total", pipeline="chain", step="sleepy", code="504") == 1


def test_first_step_refusing_the_client_input_is_a_400(servers):
    client = router([step("classify", "iris", servers["iris"])])
    response = client.post("/v1/models/chain:predict", json={"instances": [[1, 2, 3]]})
    assert response.status_code == 400
    assert "step 'classify' refused the input: inputs: expected 4 features" in response.get_json()["error"]


def test_router_counts_requests_and_steps(servers):
    client = router([step("classify", "iris", servers["iris"]),
                     step("score", "joined", servers["joined"], "features+previous")])
    for _ in range(3):
        assert client.post("/v1/models/chain:predict", json={"instances": ROWS}).status_code == 200
    client.post("/v1/models/chain:predict", json={"instances": [[1]]})
    text = client.get("/metrics").get_data(as_text=True)
    assert metric(text, "modelops_requests_total", model="chain", protocol="v1", code="200") == 3
    assert metric(text, "modelops_requests_total", model="chain", protocol="v1", code="400") == 1
    assert metric(text, "modelops_pipeline_step_requests_total", step="classify", code="200") == 3
    assert metric(text, "modelops_pipeline_step_requests_total", step="classify", code="400") == 1
    assert metric(text, "modelops_pipeline_step_requests_total", step="score", code="200") == 3
    assert metric(text, "modelops_pipeline_step_duration_seconds_count", step="score") == 3


KEYS = {"iris": "i" * 40, "joined": "j" * 40}


@pytest.fixture()
def scoring(models, tmp_path):
    """Two steps with feedback on (each its own Model key), and the router in front."""
    def app(name):
        settings = ServingSettings.from_env(models[name][1].env(
            name, "1", MODELOPS_FEEDBACK_KEY=KEYS[name]))
        return build_model_app(settings, registry=CollectorRegistry(),
                               feedback_path=tmp_path / f"{name}.sqlite3")
    with serving(app("iris")) as iris_url, serving(app("joined")) as joined_url:
        yield router([step("classify", "iris", iris_url),
                      step("score", "joined", joined_url, "features+previous")]), \
            {"classify": iris_url, "score": joined_url}


def _scored(url: str, model: str) -> float:
    import requests
    return metric(requests.get(f"{url}/metrics", timeout=5).text,
                  "modelops_feedback_rows_total", model=model) or 0.0


def test_pipeline_feedback_reaches_the_step_it_names_or_the_last(scoring):
    client, urls = scoring
    body = {"inputs": [{"name": "x", "shape": [2, 4], "datatype": "FP64", "data": ROWS[0] + ROWS[1]}]}
    answer = client.post("/v2/models/chain/infer", json=body).get_json()
    per_step = answer["parameters"]["step_feedback_tokens"]
    assert set(per_step) == {"classify", "score"} and len(per_step["classify"]) == 2
    assert answer["parameters"]["feedback_tokens"] == per_step["score"]  # the pipeline's own
    last = client.post("/v2/models/chain/feedback", json={"feedback": [
        {"token": per_step["score"][0], "truth": 10.0}]})
    assert last.status_code == 200 and last.get_json() == {"scored": 1}
    named = client.post("/v2/models/chain/feedback", json={"step": "classify", "feedback": [
        {"token": t, "truth": 0} for t in per_step["classify"]]})
    assert named.status_code == 200 and named.get_json() == {"scored": 2}
    assert (_scored(urls["score"], "joined"), _scored(urls["classify"], "iris")) == (1, 2)


def test_pipeline_feedback_errors_are_the_steps_own_or_name_the_steps(scoring):
    client, _ = scoring
    v1 = client.post("/v1/models/chain:predict", json={"instances": [ROWS[0]]}).get_json()
    tokens = v1["step_feedback_tokens"]
    assert v1["feedback_tokens"] == tokens["score"]
    item = {"token": tokens["classify"][0], "truth": 0}
    assert client.post("/v2/models/chain/feedback", json={"step": "classify", **item}).status_code == 200
    replayed = client.post("/v2/models/chain/feedback", json={"step": "classify", **item})
    assert replayed.status_code == 409 and "error" in replayed.get_json()
    wrong_model = client.post("/v2/models/chain/feedback", json={  # classify's token, last step
        "token": tokens["classify"][0], "truth": 0})
    assert wrong_model.status_code == 403, wrong_model.get_json()
    unknown = client.post("/v2/models/chain/feedback", json={"step": "nope", **item})
    assert unknown.status_code == 400
    assert "classify, score" in unknown.get_json()["error"]
    assert client.post("/v2/models/chain/feedback", data="[1]",
                       content_type="application/json").status_code == 400


def test_pipeline_feedback_to_an_unreachable_step_is_502_naming_it():
    client = router([step("classify", "iris", "http://127.0.0.1:9")], timeout="2")
    answer = client.post("/v2/models/chain/feedback", json={"token": "x", "truth": 0})
    assert answer.status_code == 502 and "'classify'" in answer.get_json()["error"]
