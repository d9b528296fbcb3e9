"""Check a decoded feature matrix against what the model accepts.

Both protocols end here: v1 `instances` and v2 `inputs` become a rows x features float matrix (or
a 1-D array of strings for text models), and check_matrix refuses empty batches, the wrong
feature count, NaN for models that cannot take missing values and values beyond float32's range
(tree models compute in float32, where they would become infinite inside the model and answer
500), naming the row and feature.
Pure.
"""

from __future__ import annotations

import numpy as np

from modelops.serving.errors import InvalidInput
from modelops.serving.model import Signature

FLOAT32_MAX = float(np.finfo(np.float32).max)


def check_matrix(matrix: np.ndarray, signature: Signature, where: str) -> np.ndarray:
    """Return `matrix` (rows x features, float64) if the model can take it; else InvalidInput."""
    rows, width = matrix.shape
    if rows == 0:
        raise InvalidInput(f"{where}: no rows to predict")
    if width == 0:
        raise InvalidInput(f"{where}: rows have no features")
    expected = signature.n_features
    if expected is not None and width != expected:
        raise InvalidInput(f"{where}: expected {expected} features per row, got {width}")
    if not signature.allow_nan:
        missing = np.isnan(matrix)
        if missing.any():
            row, feature = (int(i) for i in np.argwhere(missing)[0])
            raise InvalidInput(
                f"{where}: row {row}, feature {feature} is null/NaN; "
                "this model does not accept missing values"
            )
    huge = np.abs(matrix) > FLOAT32_MAX
    if huge.any():
        row, feature = (int(i) for i in np.argwhere(huge)[0])
        raise InvalidInput(f"{where}: row {row}, feature {feature} is beyond ±{FLOAT32_MAX:.3g}, "
                           "the largest value a model can compute with")
    return matrix


def check_strings(values: np.ndarray, where: str) -> np.ndarray:
    """Return a 1-D array of strings (one per row) for a text model; else InvalidInput."""
    if values.size == 0:
        raise InvalidInput(f"{where}: no rows to predict")
    return values
