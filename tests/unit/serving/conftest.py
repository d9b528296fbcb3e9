"""Fixtures for the serving tests: artifacts trained once per session, apps with fresh registries."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

# serving_support is imported by the tests and by the server processes' unpickling alike.
sys.path.insert(0, str(Path(__file__).parent))

from prometheus_client import CollectorRegistry  # noqa: E402
from serving_support import (  # noqa: E402
    AlwaysRaises, Artifact, RaisesOnNegative, SlowClassifier, dump, iris_data, train_forest,
    train_frame_pipeline, train_iris,
)

from modelops.serving.app import build_model_app  # noqa: E402
from modelops.serving.settings import ServingSettings  # noqa: E402


class Artifacts:
    def __init__(self, directory: Path) -> None:
        X, y = iris_data()
        self.iris = dump(train_iris(), directory / "iris.joblib")
        self.forest = dump(train_forest(), directory / "forest.joblib")
        self.raising = dump(RaisesOnNegative().fit(X, y), directory / "raising.joblib")
        self.slow = dump(SlowClassifier(delay=0.05).fit(X, y), directory / "slow.joblib")
        self.frame = dump(train_frame_pipeline(), directory / "frame.joblib")
        self.always_raises = dump(AlwaysRaises().fit(X, y), directory / "always_raises.joblib")


@pytest.fixture(scope="session")
def artifacts(tmp_path_factory: pytest.TempPathFactory) -> Artifacts:
    return Artifacts(tmp_path_factory.mktemp("artifacts"))


@pytest.fixture
def make_app(tmp_path: Path):
    """Build a model app for an artifact (loaded synchronously), with its own registry."""

    def make(artifact: Artifact, name: str = "iris", version: str = "1", **env: str):
        settings = ServingSettings.from_env(artifact.env(name, version, **env))
        return build_model_app(settings, registry=CollectorRegistry(),
                               feedback_path=tmp_path / f"feedback-{name}.sqlite3")

    return make


@pytest.fixture
def iris_app(artifacts: Artifacts, make_app):
    return make_app(artifacts.iris)


@pytest.fixture
def iris(iris_app):
    return iris_app.test_client()
