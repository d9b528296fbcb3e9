"""The samples on a real node: the iris Model answers through its Service exactly as its own
artifact predicts, and the two-step pipeline answers through its router, which reaches the
step Models by their Service DNS names (every request below goes through CoreDNS and
kube-proxy, from a client pod)."""

from __future__ import annotations

import json
from pathlib import Path

import joblib
import numpy as np

from modelops import contract
from tests.e2e.support import v1_predict_url, wait_serving

ARTIFACTS = Path(__file__).resolve().parents[2] / "deploy" / "samples" / "artifacts"
IRIS_ROWS = [[5.1, 3.5, 1.4, 0.2], [6.2, 2.9, 4.3, 1.3], [6.7, 3.0, 5.2, 2.3], [4.9, 3.0, 1.4, 0.2]]
HOUSE_ROWS = [[8.3, 41.0, 6.98, 1.02, 322.0, 2.55, 37.88, -122.23],
              [5.6, 21.0, 6.2, 0.97, 2401.0, 2.1, 37.86, -122.22],
              [2.1, 52.0, 4.1, 1.1, 900.0, 3.2, 34.05, -118.24]]




def test_iris_prediction_through_its_service_matches_the_artifact(e2e_cluster, samples, client):
    wait_serving(e2e_cluster, client, samples, "iris")
    status, body = client.predict(v1_predict_url("iris", samples), {"instances": IRIS_ROWS})
    assert status == 200, body
    expected = joblib.load(ARTIFACTS / "iris.joblib").predict(np.array(IRIS_ROWS))
    assert body["predictions"] == expected.tolist()
    model = e2e_cluster.api().model(samples, "iris")
    assert model["status"]["servingVersion"] == "1"


def test_pipeline_reaches_its_steps_by_service_dns(e2e_cluster, samples, client):
    pipeline = "house-price-diagnosis"
    wait_serving(e2e_cluster, client, samples, pipeline, plural=contract.PIPELINE_PLURAL,
                 service=f"{pipeline}-router")
    router = json.loads(e2e_cluster.access.kubectl(
        "get", "deployment", f"{pipeline}-router", "-n", samples, "-o", "json").stdout)
    env = {e["name"]: e.get("value") for e in
           router["spec"]["template"]["spec"]["containers"][0]["env"]}
    urls = [step["url"] for step in json.loads(env[contract.ENV_PIPELINE_STEPS])]
    assert urls == [f"http://{m}.{samples}.svc.cluster.local:80" for m in ("house-price",
                                                                           "diagnosis")]
    url = v1_predict_url(f"{pipeline}-router", samples).replace(
        f"/v1/models/{pipeline}-router:", f"/v1/models/{pipeline}:") + "?steps=true"
    status, body = client.predict(url, {"instances": HOUSE_ROWS})
    assert status == 200, body
    features = np.array(HOUSE_ROWS)
    price = joblib.load(ARTIFACTS / "house-price.joblib").predict(features)
    diagnosis = joblib.load(ARTIFACTS / "diagnosis.joblib").predict(
        np.column_stack([features, price]))
    assert np.allclose(body["steps"]["price"], price)
    assert body["steps"]["diagnosis"] == diagnosis.tolist()
    assert body["predictions"] == diagnosis.tolist()
