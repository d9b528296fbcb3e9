"""The two benchmark models, their artifacts, one-row request bodies and the in-process limit.

`train_models` fits LogisticRegression on iris (4 features) and a 100-tree RandomForest on 20
make_classification features (fixed seeds) and saves both as joblib files, which modelops,
MLServer's sklearn runtime and KServe's sklearnserver equivalent all load. `in_process_limit`
times model.predict directly: one-row calls per second and rows per second in 32-row batches,
so the HTTP overhead is visible.
Writes files; no network.
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass
from pathlib import Path

import joblib
import numpy as np
from sklearn.datasets import load_iris, make_classification
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LogisticRegression

SEED = 7
BATCH_ROWS = 32


@dataclass(frozen=True)
class BenchModel:
    name: str
    path: Path
    sha256: str
    row: tuple[float, ...]
    """One feature row, sent as the single row of every request."""

    @property
    def n_features(self) -> int:
        return len(self.row)

    def infer_body(self) -> bytes:
        """The v2 infer request both servers receive: one FP64 row, default output."""
        tensor = {"name": "input-0", "shape": [1, self.n_features], "datatype": "FP64",
                  "data": list(self.row)}
        return json.dumps({"inputs": [tensor]}).encode()


def train_models(directory: Path) -> list[BenchModel]:
    """Fit and save both models under `directory` (deterministic for the fixed seed)."""
    iris = load_iris()
    logistic = LogisticRegression(max_iter=1000).fit(iris.data, iris.target)
    features, labels = make_classification(n_samples=2000, n_features=20, n_informative=10,
                                           random_state=SEED)
    forest = RandomForestClassifier(n_estimators=100, random_state=SEED).fit(features, labels)
    return [_save(directory, "iris", logistic, iris.data[0]),
            _save(directory, "forest", forest, features[0])]


def _save(directory: Path, name: str, estimator: object, row: np.ndarray) -> BenchModel:
    path = directory / name / "model.joblib"
    path.parent.mkdir(parents=True, exist_ok=True)
    joblib.dump(estimator, path)
    sha256 = hashlib.sha256(path.read_bytes()).hexdigest()
    return BenchModel(name, path, sha256, tuple(round(float(v), 6) for v in row))


@dataclass(frozen=True)
class InProcessLimit:
    calls_per_second: float
    """model.predict on one row."""
    batch_rows_per_second: float
    """Rows per second when model.predict gets 32 rows at a time."""


def in_process_limit(model: BenchModel, seconds: float = 2.0) -> InProcessLimit:
    """Time the loaded estimator's predict in this process, on one core."""
    estimator = joblib.load(model.path)
    one = np.asarray([model.row], dtype=np.float64)
    batch = np.repeat(one, BATCH_ROWS, axis=0)
    return InProcessLimit(_rate(lambda: estimator.predict(one), seconds),
                          _rate(lambda: estimator.predict(batch), seconds) * BATCH_ROWS)


def _rate(call, seconds: float) -> float:
    """Calls per second of `call`, over at least `seconds` (and at least 20 calls)."""
    call()  # warm-up
    calls, started = 0, time.perf_counter()
    while calls < 20 or time.perf_counter() - started < seconds:
        call()
        calls += 1
    return calls / (time.perf_counter() - started)
