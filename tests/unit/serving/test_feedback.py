"""Feedback tokens (pure), the seen-set and the feedback route, with exact counters."""

from __future__ import annotations

import pytest
from prometheus_client import CollectorRegistry
from serving_support import IRIS_ROW

from modelops.serving.app import build_model_app
from modelops.serving.errors import InvalidInput
from modelops.serving.feedback import Forbidden, make_token, open_token, score_row
from modelops.serving.settings import ServingSettings

KEY = "k" * 40


def test_token_round_trip_and_forgery():
    token = make_token(KEY.encode(), model="iris", version="1", kind="classifier", prediction=2,
                       expires=2_000_000_000)
    claim = open_token(KEY.encode(), "iris", token, now=0)
    assert (claim.version, claim.kind, claim.prediction) == ("1", "classifier", 2)
    with pytest.raises(Forbidden):
        open_token(b"x" * 40, "iris", token, now=0)
    with pytest.raises(Forbidden):
        open_token(KEY.encode(), "other", token, now=0)
    with pytest.raises(Forbidden, match="expired"):
        open_token(KEY.encode(), "iris", token, now=3_000_000_000)
    payload, mac = token.split(".")
    with pytest.raises((Forbidden, InvalidInput)):
        open_token(KEY.encode(), "iris", payload[:-2] + "AA." + mac, now=0)


def test_score_row_bounds_classes():
    claim = open_token(KEY.encode(), "m", make_token(KEY.encode(), model="m", version="1",
                       kind="classifier", prediction=1, expires=2**31), now=0)
    assert score_row(claim, 1.0, ("0", "1")).correct
    with pytest.raises(InvalidInput, match="not one of"):
        score_row(claim, "attacker-class", ("0", "1"))


def _app(artifact, tmp_path, seen="seen.sqlite3"):
    settings = ServingSettings.from_env(artifact.env("iris", "1", MODELOPS_FEEDBACK_KEY=KEY))
    return build_model_app(settings, registry=CollectorRegistry(), feedback_path=tmp_path / seen)


def _metric(client, name):
    total = 0.0
    for line in client.get("/metrics").text.splitlines():
        if line.startswith(name + "{") or line.startswith(name + " "):
            total += float(line.rsplit(" ", 1)[1])
    return total


def test_route_scores_once_and_refuses_forged(artifacts, tmp_path):
    client = _app(artifacts.iris, tmp_path).test_client()
    body = {"inputs": [{"name": "x", "shape": [2, 4], "datatype": "FP64", "data": IRIS_ROW * 2}]}
    answer = client.post("/v2/models/iris/infer", json=body).get_json()
    tokens = answer["parameters"]["feedback_tokens"]
    predicted = answer["outputs"][0]["data"]
    assert len(tokens) == 2
    ok = client.post("/v2/models/iris/feedback", json={"feedback": [
        {"token": tokens[0], "truth": predicted[0]}, {"token": tokens[1], "truth": 2 - predicted[1] or 1}]})
    assert ok.status_code == 200, ok.get_json()
    again = client.post("/v2/models/iris/feedback", json={"token": tokens[0], "truth": 0})
    assert again.status_code == 409
    forged = client.post("/v2/models/iris/feedback", json={"token": tokens[1][:-3] + "AAA",
                                                           "truth": 0})
    assert forged.status_code in (400, 403)
    assert _metric(client, "modelops_feedback_rows_total") == 2
    assert _metric(client, "modelops_feedback_correct_total") == 1
    v1 = client.post("/v1/models/iris:predict", json={"instances": [IRIS_ROW]}).get_json()
    assert len(v1["feedback_tokens"]) == 1


def test_other_app_with_same_key_scores_but_not_twice_per_pod(artifacts, tmp_path):
    one = _app(artifacts.iris, tmp_path, "a.sqlite3").test_client()
    two = _app(artifacts.iris, tmp_path, "b.sqlite3").test_client()
    v1 = one.post("/v1/models/iris:predict", json={"instances": [IRIS_ROW]}).get_json()
    item = {"token": v1["feedback_tokens"][0], "truth": v1["predictions"][0]}
    assert two.post("/v2/models/iris/feedback", json=item).status_code == 200
    assert two.post("/v2/models/iris/feedback", json=item).status_code == 409


def test_regressor_errors(artifacts, tmp_path):
    settings = ServingSettings.from_env(artifacts.forest.env("forest", "1", MODELOPS_FEEDBACK_KEY=KEY))
    client = build_model_app(settings, registry=CollectorRegistry(),
                             feedback_path=tmp_path / "r.sqlite3").test_client()
    v1 = client.post("/v1/models/forest:predict", json={"instances": [[0.1, 0.2, 0.3, 0.4, 0.5]]}).get_json()
    item = {"token": v1["feedback_tokens"][0], "truth": v1["predictions"][0] + 2.0}
    assert client.post("/v2/models/forest/feedback", json=item).status_code == 200
    assert _metric(client, "modelops_feedback_squared_error_total") == pytest.approx(4.0)
    assert _metric(client, "modelops_feedback_abs_error_total") == pytest.approx(2.0)


def test_no_key_no_feedback(artifacts, make_app):
    client = make_app(artifacts.iris).test_client()
    assert client.post("/v2/models/iris/feedback", json={"token": "a.b", "truth": 0}).status_code == 404
