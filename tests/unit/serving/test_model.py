"""load_model: formats, skops trusted types, sklearn version policy, signatures."""

from __future__ import annotations

import io
import logging
import pickle

import joblib
import numpy as np
import pytest
import sklearn
import sklearn.base
import skops.io
from serving_support import IRIS_ROW, RaisesOnNegative, iris_data, train_forest, train_iris
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline

from modelops.serving.failures import StartupFailure
from modelops.serving.model import Signature, TensorSpec, load_model


def joblib_bytes(estimator) -> bytes:
    buffer = io.BytesIO()
    joblib.dump(estimator, buffer)
    return buffer.getvalue()


def load(data: bytes, **kwargs):
    options = {"fmt": "joblib", "method": "predict", "sha256": "f" * 64, **kwargs}
    return load_model(data, **options)


def test_joblib_iris_signature_and_predictions():
    model = load(joblib_bytes(train_iris()))
    assert model.signature == Signature(
        input_datatype="FP64", n_features=4, allow_nan=False,
        outputs=(TensorSpec("predict", "INT64", (-1,)), TensorSpec("predict_proba", "FP64", (-1, 3))),
        default_output="predict", kind="classifier",
    )
    features = np.array([IRIS_ROW, [6.7, 3.0, 5.2, 2.3]])
    assert model.predict(features, "predict").tolist() == [0, 2]
    proba = model.predict(features, "predict_proba")
    assert proba.shape == (2, 3) and np.allclose(proba.sum(axis=1), 1)
    assert model.labels(proba, "predict_proba") == [0, 2]
    assert (model.format, model.sha256) == ("joblib", "f" * 64)


def test_regressor_signature_allows_nan_and_has_no_proba():
    model = load(joblib_bytes(train_forest()))
    assert model.signature.kind == "regressor" and model.signature.allow_nan
    assert model.signature.output_names == ("predict",) and model.signature.n_features == 5
    assert model.signature.outputs[0] == TensorSpec("predict", "FP64", (-1,))


def test_string_labels_give_bytes_outputs():
    X, y = iris_data()
    names = np.array(["setosa", "versicolor", "virginica"])[y]
    model = load(joblib_bytes(LogisticRegression(max_iter=1000).fit(X, names)))
    assert model.signature.outputs[0].datatype == "BYTES"
    assert model.predict(np.array([IRIS_ROW]), "predict").tolist() == ["setosa"]


def test_text_pipelines_take_bytes():
    texts, labels = ["good movie", "bad movie", "great film", "awful film"], [1, 0, 1, 0]
    pipeline = make_pipeline(TfidfVectorizer(), LogisticRegression()).fit(texts, labels)
    model = load(joblib_bytes(pipeline))
    assert model.signature.input_datatype == "BYTES"
    assert model.signature.inputs == (TensorSpec("input-0", "BYTES", (-1,)),)


def test_nan_tolerant_models_say_so():
    X, y = iris_data()
    model = load(joblib_bytes(HistGradientBoostingClassifier(max_iter=5).fit(X, y)))
    assert model.signature.allow_nan


def test_predict_proba_method_needs_a_model_that_has_it():
    with pytest.raises(StartupFailure) as raised:
        load(joblib_bytes(train_forest()), method="predict_proba")
    assert raised.value.reason == "LoadFailed" and "predict_proba" in raised.value.message


def test_garbage_is_load_failed():
    with pytest.raises(StartupFailure) as raised:
        load(b"this is not a pickle")
    assert raised.value.reason == "LoadFailed" and "joblib could not load" in raised.value.message


def test_a_pickle_of_a_missing_class_is_load_failed():
    data = pickle.dumps(RaisesOnNegative()).replace(b"serving_support", b"not_a_module_x")
    with pytest.raises(StartupFailure, match="LoadFailed"):
        load(data)


def pickled_by(version: str, monkeypatch) -> bytes:
    monkeypatch.setattr(sklearn.base, "__version__", version)
    data = joblib_bytes(train_iris())
    monkeypatch.setattr(sklearn.base, "__version__", sklearn.__version__)
    return data


def test_other_sklearn_version_is_refused_naming_both(monkeypatch):
    data = pickled_by("1.3.2", monkeypatch)
    with pytest.raises(StartupFailure) as raised:
        load(data)
    assert raised.value.line() == (
        f"SklearnVersionMismatch: model saved with scikit-learn 1.3.2, server has {sklearn.__version__}"
    )


def test_other_sklearn_version_can_be_served_with_a_warning(monkeypatch, caplog):
    data = pickled_by("1.3.2", monkeypatch)
    with caplog.at_level(logging.WARNING, logger="modelops.serving.model"):
        model = load(data, version_policy="warn")
    assert model.predict(np.array([IRIS_ROW]), "predict").tolist() == [0]
    assert "1.3.2" in caplog.text and sklearn.__version__ in caplog.text


def skops_bytes(estimator) -> bytes:
    return skops.io.dumps(estimator)


def test_skops_loads_default_trusted_types():
    model = load(skops_bytes(train_iris()), fmt="skops")
    assert model.predict(np.array([IRIS_ROW]), "predict").tolist() == [0]
    assert model.format == "skops"


def test_skops_refuses_types_not_trusted_by_configuration():
    data = skops_bytes(train_forest())
    with pytest.raises(StartupFailure) as raised:
        load(data, fmt="skops")
    assert raised.value.reason == "UntrustedTypes"
    assert "sklearn.tree._tree.Tree" in raised.value.message
    assert "MODELOPS_SKOPS_TRUSTED_TYPES" in raised.value.message


def test_skops_loads_with_configured_trusted_types():
    model = load(skops_bytes(train_forest()), fmt="skops", trusted_types=("sklearn.tree._tree.Tree",))
    assert model.predict(np.zeros((2, 5)), "predict").shape == (2,)


def test_skops_garbage_is_load_failed():
    with pytest.raises(StartupFailure) as raised:
        load(b"PK not really a zip", fmt="skops")
    assert raised.value.reason == "LoadFailed"
