"""DataFrame models through the Flask app: every request format gives exactly model.predict(df).

A ColumnTransformer pipeline (OneHotEncoder on string columns, StandardScaler on numbers) trained
on a DataFrame; v1 row objects, v1 columnar, v2 named tensors in shuffled order and MLServer's
pandas-codec request must all answer its own predictions; missing, extra and mistyped columns
are a 400 naming the column; the v2 metadata lists the real columns.
"""

from __future__ import annotations

import random

import joblib
import numpy as np
import pytest
from serving_support import frame_data

from modelops.serving.failures import StartupFailure
from modelops.serving.model import load_model

URL_V1 = "/v1/models/frame:predict"
URL_V2 = "/v2/models/frame/infer"


@pytest.fixture
def frame_app(artifacts, make_app):
    return make_app(artifacts.frame, name="frame")


@pytest.fixture
def client(frame_app):
    return frame_app.test_client()


@pytest.fixture(scope="module")
def expected(artifacts):
    df, _ = frame_data(20)
    return df, joblib.load(artifacts.frame.path).predict(df).tolist()


def _tensors(df) -> list[dict]:
    tensors = []
    for name in df.columns:
        strings = df[name].dtype.kind not in "fiu"
        tensors.append({"name": name, "shape": [len(df)], "datatype": "BYTES" if strings else "FP64",
                        "data": df[name].tolist(),
                        **({"parameters": {"content_type": "str"}} if strings else {})})
    return tensors


def test_v1_row_objects(client, expected):
    df, predictions = expected
    answer = client.post(URL_V1, json={"instances": df.to_dict(orient="records")})
    assert answer.status_code == 200, answer.json
    assert answer.json["predictions"] == predictions


def test_v1_rows_as_lists_in_column_order(client, expected):
    df, predictions = expected
    answer = client.post(URL_V1, json={"instances": df.values.tolist()})
    assert answer.status_code == 200, answer.json
    assert answer.json["predictions"] == predictions


def test_v1_columnar(client, expected):
    df, predictions = expected
    answer = client.post(URL_V1, json={"inputs": df.to_dict(orient="list")})
    assert answer.status_code == 200, answer.json
    assert answer.json["predictions"] == predictions


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_v2_named_tensors_in_any_order(client, expected, seed):
    df, predictions = expected
    tensors = _tensors(df)
    random.Random(seed).shuffle(tensors)
    answer = client.post(URL_V2, json={"inputs": tensors})
    assert answer.status_code == 200, answer.json
    assert answer.json["outputs"][0]["data"] == predictions


def test_mlserver_pandas_codec_request(client, expected):
    """What mlserver.codecs.PandasCodec.encode_request(df) sends (content_type "pd", [n, 1])."""
    df, predictions = expected
    tensors = [dict(t, shape=[len(df), 1]) for t in _tensors(df)]
    answer = client.post(URL_V2, json={"parameters": {"content_type": "pd"}, "inputs": tensors[::-1]})
    assert answer.status_code == 200, answer.json
    assert answer.json["outputs"][0]["data"] == predictions


def test_predict_proba_output_by_name(client, expected, artifacts):
    df, _ = expected
    proba = joblib.load(artifacts.frame.path).predict_proba(df)
    answer = client.post(URL_V2, json={"inputs": _tensors(df), "outputs": [{"name": "predict_proba"}]})
    assert answer.status_code == 200, answer.json
    assert np.allclose(np.reshape(answer.json["outputs"][0]["data"], proba.shape), proba)


def test_metadata_lists_the_columns(client):
    inputs = client.get("/v2/models/frame").json["inputs"]
    assert inputs == [{"name": "city", "datatype": "BYTES", "shape": [-1]},
                      {"name": "age", "datatype": "FP64", "shape": [-1]},
                      {"name": "plan", "datatype": "BYTES", "shape": [-1]},
                      {"name": "income", "datatype": "FP64", "shape": [-1]}]


ROW = {"city": "paris", "age": 30.0, "plan": "pro", "income": 2500.0}


@pytest.mark.parametrize("row, fragment", [
    ({k: v for k, v in ROW.items() if k != "plan"}, "missing column 'plan'"),
    ({**ROW, "zip": "75001"}, "unknown column 'zip'"),
    ({**ROW, "age": "thirty"}, "column 'age': row 0 is a string"),
    ({**ROW, "city": 3}, "column 'city': row 0 is an integer"),
    ({**ROW, "city": None}, "column 'city': row 0 is null"),
])
def test_v1_bad_columns_are_400_naming_the_column(client, row, fragment):
    answer = client.post(URL_V1, json={"instances": [row]})
    assert answer.status_code == 400
    assert fragment in answer.json["error"]


def _v2_row(**changes) -> list[dict]:
    tensors = {t["name"]: t for t in _tensors(frame_data(1)[0])}
    for name, tensor in changes.items():
        if tensor is None:
            tensors.pop(name)
        else:
            tensors[name] = tensor
    return list(tensors.values())


@pytest.mark.parametrize("inputs, fragment", [
    (_v2_row(plan=None), "missing column 'plan'"),
    (_v2_row(zip={"name": "zip", "shape": [1], "datatype": "BYTES", "data": ["x"]}), "unknown column 'zip'"),
    (_v2_row(age={"name": "age", "shape": [1], "datatype": "BYTES", "data": ["x"]}), "column 'age' takes numbers"),
    (_v2_row(city={"name": "city", "shape": [1], "datatype": "INT64", "data": [1]}), "column 'city' takes BYTES"),
    (_v2_row(city={"name": "city", "shape": [2], "datatype": "BYTES", "data": ["a", "b"]}), "disagree on the number of rows"),
    (_v2_row(city={"name": "city", "shape": [1, 2], "datatype": "BYTES", "data": ["a", "b"]}), "[rows, 1]"),
    ([*_v2_row(), _v2_row()[0]], "more than once"),
])
def test_v2_bad_columns_are_400_naming_the_column(client, inputs, fragment):
    answer = client.post(URL_V2, json={"inputs": inputs})
    assert answer.status_code == 400, answer.json
    assert fragment in answer.json["error"]


def test_unknown_category_is_the_models_answer(client):
    """handle_unknown="ignore": an unseen city is predicted, not refused by the server."""
    answer = client.post(URL_V1, json={"instances": [{**ROW, "city": "brest"}]})
    assert answer.status_code == 200


def test_self_test_refuses_a_model_whose_predict_raises(artifacts):
    with pytest.raises(StartupFailure) as raised:
        load_model(artifacts.always_raises.path.read_bytes(), fmt="joblib", method="predict",
                   sha256=artifacts.always_raises.sha256)
    assert raised.value.reason == "ModelSelfTestFailed"
    assert "RuntimeError: this model cannot predict" in raised.value.line()


def test_self_test_passes_the_frame_pipeline(artifacts):
    model = load_model(artifacts.frame.path.read_bytes(), fmt="joblib", method="predict",
                       sha256=artifacts.frame.sha256)
    assert [name for name, _ in model.signature.columns] == ["city", "age", "plan", "income"]


def test_numeric_dataframe_model_takes_a_matrix_or_named_columns(make_app, tmp_path):
    import pandas as pd
    from serving_support import dump, iris_data
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    X, y = iris_data()
    df = pd.DataFrame(X, columns=["sl", "sw", "pl", "pw"])
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=500)).fit(df, y)
    client = make_app(dump(model, tmp_path / "numeric.joblib"), name="num").test_client()
    expected = model.predict(df.iloc[:5]).tolist()
    matrix = {"inputs": [{"name": "x", "shape": [5, 4], "datatype": "FP64", "data": X[:5].tolist()}]}
    answer = client.post("/v2/models/num/infer", json=matrix)
    assert answer.status_code == 200 and answer.json["outputs"][0]["data"] == expected
    named = {"inputs": [{"name": c, "shape": [5], "datatype": "FP64", "data": df[c][:5].tolist()}
                        for c in ["pw", "sl", "pl", "sw"]]}
    answer = client.post("/v2/models/num/infer", json=named)
    assert answer.status_code == 200 and answer.json["outputs"][0]["data"] == expected
    answer = client.post("/v1/models/num:predict", json={"instances": X[:5].tolist()})
    assert answer.status_code == 200 and answer.json["predictions"] == expected
