"""Open Inference Protocol v2: request parsing (JSON and binary), features, responses, metadata."""

from __future__ import annotations

import json

import numpy as np
import pytest

from modelops.serving.errors import InvalidInput
from modelops.serving.model import Signature, TensorSpec
from modelops.serving.v2 import (
    features_from_inputs, infer_response, model_metadata, output_tensor, parse_infer_request,
)

IRIS = Signature(n_features=4, allow_nan=False,
                 outputs=(TensorSpec("predict", "INT64", (-1,)),), kind="classifier")


def tensor(data, shape, datatype="FP64", name="x", **extra) -> dict:
    return {"name": name, "shape": shape, "datatype": datatype, "data": data, **extra}


def parse(payload: dict, header_length=None, binary=b""):
    return parse_infer_request(json.dumps(payload).encode() + binary, header_length)


def features(payload: dict, signature=IRIS):
    return features_from_inputs(parse(payload).inputs, signature)


def test_flat_and_nested_data_give_the_same_matrix():
    flat = features({"inputs": [tensor([1, 2, 3, 4, 5, 6, 7, 8], [2, 4])]})
    nested = features({"inputs": [tensor([[1, 2, 3, 4], [5, 6, 7, 8]], [2, 4])]})
    assert flat.tolist() == nested.tolist() == [[1, 2, 3, 4], [5, 6, 7, 8]]


def test_request_fields_are_kept():
    parsed = parse({"id": "abc", "parameters": {"k": 1},
                    "inputs": [tensor([1, 2, 3, 4], [1, 4], "FP32")], "outputs": [{"name": "predict"}]})
    assert parsed.id == "abc" and parsed.parameters == {"k": 1} and parsed.outputs == ("predict",)
    assert parsed.inputs[0].datatype == "FP32" and parsed.inputs[0].shape == (1, 4)


def test_several_inputs_are_joined_column_wise():
    matrix = features({"inputs": [tensor([1, 5], [2], name="a"), tensor([[2, 3], [6, 7]], [2, 2], "INT64", name="b"),
                                  tensor([4, 8], [2, 1], "FP32", name="c")]})
    assert matrix.tolist() == [[1, 2, 3, 4], [5, 6, 7, 8]]


def test_binary_tensor_extension():
    raw = np.array([[1, 2, 3, 4]], dtype="<f4").tobytes()
    header = json.dumps({"inputs": [{"name": "x", "shape": [1, 4], "datatype": "FP32",
                                     "parameters": {"binary_data_size": len(raw)}}]}).encode()
    parsed = parse_infer_request(header + raw, str(len(header)))
    assert features_from_inputs(parsed.inputs, IRIS).tolist() == [[1, 2, 3, 4]]


@pytest.mark.parametrize(("payload", "fragment"), [
    ({}, "'inputs' must be a non-empty list"),
    ({"inputs": []}, "'inputs' must be a non-empty list"),
    ({"inputs": [5]}, "inputs[0] must be an object"),
    ({"inputs": [{"shape": [1], "datatype": "FP64", "data": [1]}]}, "inputs[0].name"),
    ({"inputs": [tensor([1], [1], "FLOAT")]}, "datatype 'FLOAT' is not one of"),
    ({"inputs": [tensor([1], None)]}, "shape must be a list"),
    ({"inputs": [tensor([1], [])]}, "shape must be a list of 1 to 8"),
    ({"inputs": [tensor([1], [-1])]}, "non-negative integers"),
    ({"inputs": [tensor([1], [True])]}, "non-negative integers"),
    ({"inputs": [tensor([1, 2, 3], [1, 4])]}, "shape [1, 4] needs 4 values, data has 3"),
    ({"inputs": [{"name": "x", "shape": [1], "datatype": "FP64"}]}, "missing 'data'"),
    ({"inputs": [tensor([[1, [2]]], [1, 2])]}, "nested deeper"),
    ({"id": 5, "inputs": [tensor([1], [1])]}, "'id' must be a string"),
    ({"parameters": [], "inputs": [tensor([1], [1])]}, "'parameters' must be an object"),
    ({"inputs": [tensor([1], [1], parameters=[])]}, "inputs[0].parameters"),
    ({"outputs": {}, "inputs": [tensor([1], [1])]}, "'outputs' must be a list"),
    ({"outputs": [{}], "inputs": [tensor([1], [1])]}, "outputs[0]"),
])
def test_bad_requests_name_the_field(payload, fragment):
    with pytest.raises(InvalidInput) as raised:
        parse(payload)
    assert fragment in raised.value.message


@pytest.mark.parametrize(("inputs", "fragment"), [
    ([tensor([1, 2, 3, 4], [4])], "shape [4] is 4 rows of 1 feature; for one row of 4 features"),
    ([tensor([1, 2, 3], [1, 3])], "expected 4 features per row, got 3"),
    ([tensor([], [0, 4])], "no rows to predict"),
    ([tensor([1] * 8, [1, 2, 4])], "more than 2 dimensions"),
    ([tensor(["a", "b", "c", "d"], [1, 4], "BYTES")], "takes numbers, not BYTES"),
    ([tensor([1, 2], [2], name="a"), tensor([1, 2, 3], [3], name="b")], "disagree on the number of rows"),
    ([tensor([1, None, 3, 4], [1, 4])], "row 0, feature 1 is null/NaN"),
])
def test_inputs_that_do_not_fit_the_model(inputs, fragment):
    with pytest.raises(InvalidInput) as raised:
        features({"inputs": inputs})
    assert fragment in raised.value.message


@pytest.mark.parametrize(("header_length", "binary", "fragment"), [
    ("abc", b"", "Inference-Header-Content-Length"),
    ("0", b"", "Inference-Header-Content-Length"),
    ("100000", b"", "Inference-Header-Content-Length"),
])
def test_bad_binary_header(header_length, binary, fragment):
    with pytest.raises(InvalidInput, match=fragment):
        parse({"inputs": [tensor([1], [1])]}, header_length, binary)


def test_binary_data_must_be_accounted_for():
    payload = {"inputs": [tensor([1, 2, 3, 4], [1, 4])]}
    header = json.dumps(payload).encode()
    with pytest.raises(InvalidInput, match="4 bytes of binary data belong to no input"):
        parse_infer_request(header + b"\0" * 4, str(len(header)))
    payload = {"inputs": [{"name": "x", "shape": [1, 4], "datatype": "FP32",
                           "parameters": {"binary_data_size": 64}}]}
    header = json.dumps(payload).encode()
    with pytest.raises(InvalidInput, match="does not fit the binary data"):
        parse_infer_request(header + b"\0" * 16, str(len(header)))


def test_text_model_input_rules():
    text = Signature(input_datatype="BYTES")
    assert features({"inputs": [tensor(["a", "b"], [2, 1], "BYTES")]}, text).tolist() == ["a", "b"]
    with pytest.raises(InvalidInput, match="exactly one BYTES input"):
        features({"inputs": [tensor(["a"], [1], "BYTES"), tensor(["b"], [1], "BYTES", name="y")]}, text)
    with pytest.raises(InvalidInput, match="takes BYTES"):
        features({"inputs": [tensor([1.0], [1])]}, text)
    with pytest.raises(InvalidInput, match=r"\[rows\] or \[rows, 1\]"):
        features({"inputs": [tensor(["a", "b"], [1, 2], "BYTES")]}, text)


def test_response_and_metadata_shapes():
    out = output_tensor("predict_proba", np.array([[0.5, 0.5]]))
    assert out == {"name": "predict_proba", "shape": [1, 2], "datatype": "FP64", "data": [0.5, 0.5]}
    response = infer_response(model_name="iris", model_version="3", request_id="r", outputs=[out])
    assert response == {"model_name": "iris", "id": "r", "outputs": [out], "model_version": "3"}
    assert "model_version" not in infer_response(model_name="m", model_version="", request_id="r", outputs=[])
    assert model_metadata("iris", "3", IRIS) == {
        "name": "iris", "versions": ["3"], "platform": "scikit-learn",
        "inputs": [{"name": "input-0", "datatype": "FP64", "shape": [-1, 4]}],
        "outputs": [{"name": "predict", "datatype": "INT64", "shape": [-1]}],
    }
