"""Test inputs: Model and ModelPipeline bodies with overridable fields."""

from __future__ import annotations

import copy
from typing import Any

from modelops import contract

SHA_A = "a" * 64
SHA_B = "b" * 64
SHA_C = "c" * 64


def model_spec(version: str = "1", sha256: str = SHA_A, **overrides: Any) -> dict:
    spec = {
        "version": version,
        "artifact": {"uri": f"configMap://iris-{version}/model.joblib", "sha256": sha256},
        "method": "predict",
        "replicas": 2,
        "rollback": {"window": "1m", "interval": "10s", "consecutiveBreaches": 2,
                     "minRequests": 10, "bakeWindow": "5m", "errorRateThreshold": 0.05},
    }
    spec.update(copy.deepcopy(overrides))
    return spec


def model_body(name: str = "iris", namespace: str = "demo", generation: int = 1,
               status: dict | None = None, **spec_overrides: Any) -> dict:
    return {
        "apiVersion": contract.API_GROUP_VERSION,
        "kind": contract.MODEL_KIND,
        "metadata": {"name": name, "namespace": namespace, "uid": f"uid-{name}",
                     "generation": generation, "resourceVersion": "1"},
        "spec": model_spec(**spec_overrides),
        "status": status or {},
    }
