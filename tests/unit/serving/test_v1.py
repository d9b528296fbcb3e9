"""KServe v1 parsing and responses."""

from __future__ import annotations

import json

import numpy as np
import pytest

from modelops.serving.errors import InvalidInput
from modelops.serving.model import Signature
from modelops.serving.v1 import parse_predict_request, predict_response

IRIS = Signature(n_features=4, allow_nan=False)
TEXT = Signature(input_datatype="BYTES")


def parse(payload, signature=IRIS):
    return parse_predict_request(json.dumps(payload).encode(), signature)


def test_rows_become_a_matrix():
    features = parse({"instances": [[1, 2, 3, 4], [5, 6, 7, 8.5]]})
    assert features.dtype == np.float64 and features.tolist() == [[1, 2, 3, 4], [5, 6, 7, 8.5]]


def test_text_models_take_strings():
    assert parse({"instances": ["good", "bad"]}, TEXT).tolist() == ["good", "bad"]


def test_nan_allowed_when_the_model_allows_it():
    features = parse({"instances": [[1, None]]}, Signature(n_features=2, allow_nan=True))
    assert np.isnan(features[0, 1])


@pytest.mark.parametrize(("payload", "fragment"), [
    ({}, "missing 'instances'"),
    ({"instances": []}, "non-empty list"),
    ({"instances": {"a": 1}}, "non-empty list of rows, got an object"),
    ({"instances": [1, 2, 3, 4]}, "instances[0] must be a list of numbers"),
    ({"instances": [[1, 2, 3, 4], [1, 2, 3]]}, "instances[1] has 3 values; instances[0] has 4"),
    ({"instances": [[1, 2, 3]]}, "expected 4 features per row, got 3"),
    ({"instances": [[1, 2, 3, "4"]]}, "row 0, feature 3 is a string"),
    ({"instances": [[1, 2, None, 4]]}, "row 0, feature 2 is null/NaN"),
    ({"instances": [[1, 2, 1e300, 4]]}, "row 0, feature 2 is beyond"),  # float32 overflow in trees
    ({"instances": [[1, 2, 3, True]]}, "a boolean"),
    ({"instances": [[]]}, "rows have no features"),
    ({"instances": ["text"]}, "instances[0] must be a list of numbers"),
])
def test_bad_requests_name_the_problem(payload, fragment):
    with pytest.raises(InvalidInput) as raised:
        parse(payload)
    assert fragment in raised.value.message


def test_infinity_is_refused():
    with pytest.raises(InvalidInput, match="row 0, feature 1 is infinite"):
        parse_predict_request(b'{"instances": [[1, Infinity, 3, 4]]}', IRIS)


def test_text_model_refuses_numbers():
    with pytest.raises(InvalidInput, match="BYTES needs strings"):
        parse({"instances": [[1, 2]]}, TEXT)


def test_predict_response_nests_rows_and_steps():
    assert predict_response(np.array([0, 2])) == {"predictions": [0, 2]}
    assert predict_response(np.array([[0.25, 0.75]])) == {"predictions": [[0.25, 0.75]]}
    response = predict_response(np.array([1.5]), {"a": np.array([1]), "b": np.array([1.5])})
    assert response == {"predictions": [1.5], "steps": {"a": [1], "b": [1.5]}}
