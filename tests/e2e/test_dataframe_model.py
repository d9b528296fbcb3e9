"""A DataFrame model on a real node: a ColumnTransformer pipeline (strings and numbers) answers
through its Service, v1 row objects and v2 named tensors in shuffled order alike, exactly as the
artifact predicts; its v2 metadata lists the real columns."""

from __future__ import annotations

import io

import joblib

from tests.e2e.support import (apply, artifact_configmap, model_manifest, service_url, sha256_hex,
                               v1_predict_url, wait_serving)
from tests.unit.serving.serving_support import frame_data


def test_dataframe_model_predicts_through_its_service(e2e_cluster, namespace, artifacts, client):
    data = artifacts["frame.joblib"]
    apply(e2e_cluster.access, namespace, artifact_configmap("frames", {"frame.joblib": data}))
    apply(e2e_cluster.access, namespace, model_manifest(
        "churn", "1", "configMap://frames/frame.joblib", sha256_hex(data)))
    wait_serving(e2e_cluster, client, namespace, "churn")
    df, _ = frame_data(8)
    expected = joblib.load(io.BytesIO(data)).predict(df).tolist()

    status, body = client.predict(v1_predict_url("churn", namespace),
                                  {"instances": df.to_dict(orient="records")})
    assert status == 200, body
    assert body["predictions"] == expected

    tensors = [{"name": name, "shape": [len(df)],
                "datatype": "FP64" if df[name].dtype.kind == "f" else "BYTES",
                "data": df[name].tolist()} for name in reversed(df.columns)]
    status, body = client.predict(service_url("churn", namespace, "/v2/models/churn/infer"),
                                  {"parameters": {"content_type": "pd"}, "inputs": tensors})
    assert status == 200, body
    assert body["outputs"][0]["data"] == expected
