"""Test support for the serving tests: estimators, artifacts and metric parsing.

The estimators are pickled into artifacts that real server processes load, so this module must
be importable there too (the process tests put its folder on PYTHONPATH).
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass
from pathlib import Path

import joblib
import numpy as np
from prometheus_client.parser import text_string_to_metric_families
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.datasets import load_iris, make_regression
from sklearn.ensemble import RandomForestRegressor
from sklearn.linear_model import LogisticRegression


class RaisesOnNegative(ClassifierMixin, BaseEstimator):
    """Nearest-centroid classifier that raises for any row whose first feature is negative."""

    def fit(self, X, y):
        X, y = np.asarray(X, dtype=float), np.asarray(y)
        self.classes_ = np.unique(y)
        self.n_features_in_ = X.shape[1]
        self.centroids_ = np.array([X[y == label].mean(axis=0) for label in self.classes_])
        return self

    def predict(self, X):
        X = np.asarray(X, dtype=float)
        if (X[:, 0] < 0).any():
            raise ValueError("negative first feature")
        distances = ((X[:, None, :] - self.centroids_[None, :, :]) ** 2).sum(axis=2)
        return self.classes_[np.argmin(distances, axis=1)]


class SlowClassifier(ClassifierMixin, BaseEstimator):
    """Predicts the first class after sleeping `delay` seconds per call."""

    def __init__(self, delay: float = 0.05):
        self.delay = delay

    def fit(self, X, y):
        self.classes_ = np.unique(y)
        self.n_features_in_ = np.asarray(X).shape[1]
        return self

    def predict(self, X):
        time.sleep(self.delay)
        return np.repeat(self.classes_[:1], len(X))


@dataclass(frozen=True)
class Artifact:
    path: Path
    sha256: str

    def env(self, name: str = "iris", version: str = "1", **extra: str) -> dict[str, str]:
        """Environment for a server of this artifact (model mode)."""
        return {"MODELOPS_MODEL_NAME": name, "MODELOPS_MODEL_VERSION": version,
                "MODELOPS_ARTIFACT_URI": f"file://{self.path}",
                "MODELOPS_ARTIFACT_SHA256": self.sha256, **extra}


def dump(estimator: object, path: Path) -> Artifact:
    if path.suffix == ".skops":
        import skops.io

        skops.io.dump(estimator, path)
    else:
        joblib.dump(estimator, path)
    return Artifact(path, hashlib.sha256(path.read_bytes()).hexdigest())


def iris_data() -> tuple[np.ndarray, np.ndarray]:
    return load_iris(return_X_y=True)


def train_iris() -> LogisticRegression:
    X, y = iris_data()
    return LogisticRegression(max_iter=1000).fit(X, y)


def train_forest(n_features: int = 5) -> RandomForestRegressor:
    X, y = make_regression(n_samples=200, n_features=n_features, random_state=0)
    return RandomForestRegressor(n_estimators=10, max_depth=6, random_state=0).fit(X, y)


def metric(text: str, name: str, **labels: str) -> float | None:
    """One sample's value from Prometheus exposition text; None when absent."""
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                return sample.value
    return None


IRIS_ROW = [5.1, 3.5, 1.4, 0.2]


class AlwaysRaises(ClassifierMixin, BaseEstimator):
    """Fits like a classifier; predict always raises (the load-time self-test must refuse it)."""

    def fit(self, X, y):
        self.classes_ = np.unique(y)
        self.n_features_in_ = np.asarray(X).shape[1]
        return self

    def predict(self, X):
        raise RuntimeError("this model cannot predict")


def frame_data(rows: int = 60):
    """A DataFrame with string and numeric columns, and a label derived from both."""
    import pandas as pd

    rng = np.random.default_rng(7)
    city = rng.choice(["paris", "lyon", "nice"], rows)
    plan = rng.choice(["basic", "pro"], rows)
    age = rng.integers(18, 80, rows).astype(float)
    income = rng.normal(3000, 800, rows).round(2)
    label = ((city == "paris") ^ (income > 3000)).astype(int)
    return pd.DataFrame({"city": city, "age": age, "plan": plan, "income": income}), label


def train_frame_pipeline():
    """ColumnTransformer: OneHotEncoder on the string columns, StandardScaler on the numbers."""
    from sklearn.compose import ColumnTransformer
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    X, y = frame_data()
    columns = ColumnTransformer([("strings", OneHotEncoder(handle_unknown="ignore"), ["city", "plan"]),
                                 ("numbers", StandardScaler(), ["age", "income"])])
    return Pipeline([("columns", columns), ("classify", LogisticRegression(max_iter=500))]).fit(X, y)


class FirstFeatureClassifier(ClassifierMixin, BaseEstimator):
    """Class 1 when the first feature is above `threshold`, else 0: two thresholds disagree
    exactly on the rows between them (the shadow tests' serving model and candidate)."""

    def __init__(self, threshold: float = 0.0):
        self.threshold = threshold

    def fit(self, X, y=None):
        self.classes_ = np.array([0, 1])
        self.n_features_in_ = np.asarray(X).shape[1]
        return self

    def predict(self, X):
        return (np.asarray(X, dtype=float)[:, 0] > self.threshold).astype(np.int64)


def threshold_artifacts(directory: Path, thresholds: dict[str, float]) -> dict[str, Artifact]:
    """A FirstFeatureClassifier artifact per name (4 features, like iris)."""
    X = np.zeros((2, 4))
    return {name: dump(FirstFeatureClassifier(value).fit(X), directory / f"first-{name}.joblib")
            for name, value in thresholds.items()}


def shadow_rows(rows: int, share_between: float, low: float, high: float) -> list[list[float]]:
    """`rows` rows whose first feature lies in (low, high] for exactly `share_between` of them."""
    between = round(rows * share_between)
    firsts = [low + (high - low) * (i + 1) / (between + 1) for i in range(between)]
    firsts += [high + 1.0 + i for i in range(rows - between)]
    return [[first, 1.0, 1.0, 1.0] for first in firsts]
