"""Shadow comparison, pure (serving/shadow_diff.py): targets from annotations, candidate
answers, and rows that disagree for classifiers, probabilities, regressors and text."""

from __future__ import annotations

import math

import numpy as np
import pytest

from modelops import contract as c
from modelops.serving.shadow_diff import (
    BadAnswer, ShadowTarget, candidate_output, disagreements, parse_target,
)

URL, VERSION = c.ANNOTATION_SHADOW_URL, c.ANNOTATION_SHADOW_VERSION
PERCENT, TOLERANCE = c.ANNOTATION_SHADOW_PERCENT, c.ANNOTATION_SHADOW_TOLERANCE
CANARY, HASH = c.ANNOTATION_CANARY_PERCENT, c.ANNOTATION_CANARY_HASH_HEADER


@pytest.mark.parametrize(("annotations", "expected"), [
    ({}, None),
    ({URL: " ", VERSION: "2"}, None),
    ({URL: "http://iris-2.demo.svc:80", VERSION: "2"},
     ShadowTarget("http://iris-2.demo.svc:80", "2", 100.0, 0.01)),
    ({URL: "http://iris-2.demo.svc:80", VERSION: "2", PERCENT: "0", CANARY: "10", HASH: "X-User"},
     ShadowTarget("http://iris-2.demo.svc:80", "2", 0.0, 0.01, 10.0, "X-User")),
    ({URL: "https://10.0.0.7:8443/", VERSION: "2.1+b", PERCENT: "12.5", TOLERANCE: "0"},
     ShadowTarget("https://10.0.0.7:8443", "2.1+b", 12.5, 0.0)),
    ({URL: "http://[::1]:8080", VERSION: "v3", PERCENT: "0"},
     ShadowTarget("http://[::1]:8080", "v3", 0.0, 0.01)),
])
def test_targets_from_annotations(annotations, expected):
    assert parse_target(annotations) == expected


@pytest.mark.parametrize(("annotations", "named"), [
    ({URL: "http://c:80"}, VERSION),
    ({URL: "http://c:80", VERSION: "two words"}, VERSION),
    ({URL: "ftp://c:80", VERSION: "2"}, URL),
    ({URL: "http://c:80/v2/models", VERSION: "2"}, URL),
    ({URL: "http://c:port", VERSION: "2"}, URL),
    ({URL: "http://user@c:80", VERSION: "2"}, URL),
    ({URL: "c:80", VERSION: "2"}, URL),
    ({URL: "http://c:80", VERSION: "2", PERCENT: "101"}, PERCENT),
    ({URL: "http://c:80", VERSION: "2", CANARY: "150"}, CANARY),
    ({URL: "http://c:80", VERSION: "2", CANARY: "ten"}, CANARY),
    ({URL: "http://c:80", VERSION: "2", HASH: "X User"}, HASH),
    ({URL: "http://c:80", VERSION: "2", HASH: "x-user\r\nHost"}, HASH),
    ({URL: "http://c:80", VERSION: "2", PERCENT: "-1"}, PERCENT),
    ({URL: "http://c:80", VERSION: "2", PERCENT: "nan"}, PERCENT),
    ({URL: "http://c:80", VERSION: "2", TOLERANCE: "a lot"}, TOLERANCE),
])
def test_bad_annotations_name_the_key(annotations, named):
    with pytest.raises(ValueError, match=named):
        parse_target(annotations)


V2_ANSWER = {"model_name": "iris", "outputs": [
    {"name": "predict_proba", "shape": [2, 2], "datatype": "FP64", "data": [0.1, 0.9, 0.8, 0.2]},
    {"name": "predict", "shape": [2], "datatype": "INT64", "data": [1, 0]},
]}


def test_candidate_outputs_by_protocol():
    assert candidate_output("v1", {"predictions": [1, 0, 2]}, "predict").tolist() == [1, 0, 2]
    assert candidate_output("v1", {"predictions": [[0.5, 0.5]]}, "predict").shape == (1, 2)
    assert candidate_output("v2", V2_ANSWER, "predict").tolist() == [1, 0]
    assert candidate_output("v2", V2_ANSWER, "predict_proba").tolist() == [[0.1, 0.9], [0.8, 0.2]]
    assert candidate_output("v1", {"predictions": ["a", "b"]}, "predict").tolist() == ["a", "b"]


@pytest.mark.parametrize(("protocol", "answer", "message"), [
    ("v1", [1, 2], "not a JSON object"),
    ("v1", {"outputs": []}, "no 'predictions'"),
    ("v1", {"predictions": 3}, "list of predictions"),
    ("v1", {"predictions": [[1, 2], [3]]}, "rectangular"),
    ("v1", {"predictions": [{"a": 1}]}, "unexpected predictions"),
    ("v2", {"outputs": [{"name": "other", "shape": [1], "data": [1]}]}, "no output 'predict'"),
    ("v2", {"outputs": [{"name": "predict", "shape": [3], "data": [1, 2]}]}, "does not fit"),
    ("v2", {"error": "boom"}, "no output 'predict'"),
])
def test_answers_that_cannot_be_compared(protocol, answer, message):
    with pytest.raises(BadAnswer, match=message):
        candidate_output(protocol, answer, "predict")


def _a(values, dtype=None):
    return np.array(values, dtype=dtype)


@pytest.mark.parametrize(("ours", "theirs", "kind", "tolerance", "expected"), [
    # classifier labels: numbers as numbers, anything else as text
    (_a([0, 1, 2, 1]), _a([0, 1, 2, 1]), "classifier", 0.01, 0),
    (_a([0, 1, 2, 1]), _a([0, 2, 2, 0]), "classifier", 0.01, 2),
    (_a([0, 1]), _a([0.0, 1.0]), "classifier", 0.01, 0),
    (_a([True, False]), _a([1, 1]), "classifier", 0.01, 1),
    (_a(["cat", "dog", "cat"], object), _a(["cat", "cat", "cat"]), "classifier", 0.01, 1),
    (_a([1, 2], object), _a(["1", "2.0"]), "classifier", 0.01, 1),  # "2.0" is text, not 2
    (_a(["1", "2"], object), _a([1.0, 2.0]), "classifier", 0.01, 0),  # 2.0 is the class 2
    # probabilities: the most probable class (first on ties)
    (_a([[0.2, 0.8], [0.6, 0.4]]), _a([[0.3, 0.7], [0.4, 0.6]]), "classifier", 0.01, 1),
    (_a([[0.5, 0.5]]), _a([[0.5, 0.5]]), "classifier", 0.0, 0),
    # regressors: |v - w| > tolerance * max(|v|, |w|)
    (_a([100.0, 100.0, 100.0]), _a([100.0, 101.0, 98.9]), "regressor", 0.01, 1),
    (_a([0.0, -5.0]), _a([0.0, 5.0]), "regressor", 0.01, 1),
    (_a([0.0]), _a([1e-300]), "regressor", 0.01, 1),
    (_a([1.0]), _a([1.0 + 1e-12]), "regressor", 0.0, 1),
    (_a([1.0]), _a([1.0]), "regressor", 0.0, 0),
    (_a([math.nan, math.nan, 1.0]), _a([math.nan, 1.0, math.nan]), "regressor", 0.01, 2),
    (_a([math.inf, math.inf, -math.inf]), _a([math.inf, 1e308, math.inf]), "regressor", 0.5, 2),
    (_a([[1.0, 2.0], [3.0, 4.0]]), _a([[1.0, 2.0], [3.0, 4.5]]), "regressor", 0.01, 1),
    (_a([3, 4]), _a([3.0, 4.0]), "regressor", 0.0, 0),
    # other models: numbers within the tolerance, text as text
    (_a([1.0, 2.0]), _a([1.0, 2.5]), "other", 0.01, 1),
    (_a(["a", "b"], object), _a(["a", "c"]), "other", 0.01, 1),
])
def test_disagreeing_rows(ours, theirs, kind, tolerance, expected):
    assert disagreements(ours, theirs, kind, tolerance) == expected


@pytest.mark.parametrize(("ours", "theirs", "message"), [
    (_a([1, 2, 3]), _a([1, 2]), "answered 2 rows for 3"),
    (_a([[0.1, 0.9]]), _a([[0.1, 0.8, 0.1]]), "3 values, ours 2"),
    (_a([1]), _a(1), "answered 1 rows for 1"),
])
def test_answers_of_another_shape_are_bad(ours, theirs, message):
    with pytest.raises(BadAnswer, match=message):
        disagreements(ours, theirs, "classifier", 0.01)
