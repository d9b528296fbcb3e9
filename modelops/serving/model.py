"""The loaded model: deserialise verified bytes, check the sklearn version, derive a signature.

load_model turns artifact bytes (already sha256-checked by artifact.read_verified) into a
LoadedModel. joblib, or skops with a trusted-types list from configuration only. A model pickled
by another scikit-learn version is refused or logged per the version policy, naming both
versions. The Signature (input datatype, feature count, NaN tolerance, outputs) drives request
validation and the v2 metadata. No HTTP here; no file I/O.
"""

from __future__ import annotations

import io
import logging
import warnings
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import sklearn
from sklearn.base import is_classifier, is_regressor
from sklearn.exceptions import InconsistentVersionWarning
from sklearn.utils import get_tags

from modelops.serving.failures import (
    LOAD_FAILED, SELF_TEST_FAILED, UNTRUSTED_TYPES, VERSION_MISMATCH, StartupFailure,
)
from modelops.serving.frames import column_types
from modelops.serving.tensors import BYTES, datatype_of

log = logging.getLogger(__name__)

@dataclass(frozen=True)
class TensorSpec:
    name: str
    datatype: str
    shape: tuple[int, ...]

    def as_json(self) -> dict:
        return {"name": self.name, "datatype": self.datatype, "shape": list(self.shape)}


@dataclass(frozen=True)
class Signature:
    """What a model accepts and returns; the router uses `Signature.generic()`."""

    input_datatype: str = "FP64"
    """FP64 (a rows x features matrix) or BYTES (one string per row, for text pipelines)."""
    n_features: int | None = None
    allow_nan: bool = True
    outputs: tuple[TensorSpec, ...] = ()
    default_output: str = "predict"
    kind: str = "other"
    """classifier | regressor | other (decides accuracy vs RMSE for feedback)."""
    columns: tuple[tuple[str, str], ...] = ()
    """A DataFrame model's (column name, BYTES|FP64) in fitted order; () for matrix models."""

    @classmethod
    def generic(cls) -> Signature:
        return cls()

    @property
    def inputs(self) -> tuple[TensorSpec, ...]:
        if self.columns:
            return tuple(TensorSpec(name, datatype, (-1,)) for name, datatype in self.columns)
        if self.input_datatype == BYTES:
            return (TensorSpec("input-0", BYTES, (-1,)),)
        return (TensorSpec("input-0", self.input_datatype, (-1, self.n_features or -1)),)

    @property
    def output_names(self) -> tuple[str, ...]:
        return tuple(spec.name for spec in self.outputs)


class LoadedModel:
    """A deserialised estimator plus what the server knows about it."""

    def __init__(self, estimator: object, *, method: str, sha256: str, fmt: str) -> None:
        self.estimator = estimator
        self.sha256 = sha256
        self.format = fmt
        self.signature = signature_of(estimator, method)

    def predict(self, features: np.ndarray, output: str) -> np.ndarray:
        """Call the estimator's `output` method (predict or predict_proba); may raise anything.

        sklearn keeps its own finiteness checks: a NaN that the model makes inside itself
        (e.g. log of a negative feature) must fail as it would without the server.
        """
        return np.asarray(getattr(self.estimator, output)(features))

    def labels(self, result: np.ndarray, output: str) -> list:
        """Per-row predicted labels (or values) of `result`, for quality feedback."""
        if output == "predict_proba":
            classes = np.asarray(getattr(self.estimator, "classes_"))
            return classes[np.argmax(result, axis=1)].tolist()
        return result.tolist()


def load_model(data: bytes, *, fmt: str, method: str, sha256: str,
               trusted_types: Sequence[str] = (), version_policy: str = "refuse") -> LoadedModel:
    """Deserialise verified artifact bytes; StartupFailure on any reason not to serve them."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", InconsistentVersionWarning)
        estimator = _deserialise(data, fmt, trusted_types)
    _check_versions(caught, version_policy)
    if not callable(getattr(estimator, method, None)):
        raise StartupFailure(
            LOAD_FAILED, f"the artifact is a {type(estimator).__name__}, which has no {method}()"
        )
    loaded = LoadedModel(estimator, method=method, sha256=sha256, fmt=fmt)
    self_test(loaded)
    return loaded


def self_test(model: LoadedModel) -> None:
    """Predict on examples made from the model's own signature; StartupFailure if none works.

    A model that cannot predict the input it declares (a DataFrame pipeline served as a matrix,
    a broken custom step) must not report Ready. Examples are all-zeros and all-ones rows (a
    log() step cannot take 0); one that predicts is enough. Models that declare no input size
    are skipped.
    """
    first_error: Exception | None = None
    for fill in (0.0, 1.0):
        example = example_input(model, fill)
        if example is None:
            return
        try:
            model.predict(example, model.signature.default_output)
            return
        except Exception as error:  # whatever the model raises is why it cannot serve
            first_error = first_error or error
    if isinstance(first_error, ValueError) and "unknown categor" in str(first_error):
        # the made-up row is outside the domain of a fitted encoder (numeric category codes):
        # that says nothing about the model, so the test cannot judge it
        log.warning("Self-test skipped: the example rows are not in the model's categories (%s)",
                    " ".join(str(first_error).split())[:200])
        return
    message = " ".join(str(first_error).split())[:300]
    raise StartupFailure(SELF_TEST_FAILED, f"a prediction on an example input raised "
                                           f"{type(first_error).__name__}: {message}")


def example_input(model: LoadedModel, fill: float = 0.0):
    """One row the model should accept: known categories for string columns, `fill` elsewhere."""
    signature = model.signature
    if signature.columns:
        import pandas as pd

        from modelops.serving.frames import example_row

        return pd.DataFrame([example_row(model.estimator, signature.columns, fill)])
    if signature.input_datatype == BYTES:
        return np.array(["example"], dtype=object)
    if signature.n_features:
        return np.full((1, signature.n_features), fill)
    return None


def _deserialise(data: bytes, fmt: str, trusted_types: Sequence[str]) -> object:
    try:
        if fmt == "skops":
            return _load_skops(data, trusted_types)
        import joblib

        return joblib.load(io.BytesIO(data))
    except StartupFailure:
        raise
    except Exception as error:  # any unpickling problem is a load failure with its message
        raise StartupFailure(LOAD_FAILED, f"{fmt} could not load the artifact: "
                                          f"{type(error).__name__}: {error}") from None


def _load_skops(data: bytes, trusted_types: Sequence[str]) -> object:
    import skops.io

    untrusted = [t for t in skops.io.get_untrusted_types(data=data) if t not in trusted_types]
    if untrusted:
        raise StartupFailure(
            UNTRUSTED_TYPES,
            f"the skops artifact contains types that are not trusted: {', '.join(untrusted)}; "
            "add them to the Model's spec.artifact.trustedTypes (MODELOPS_SKOPS_TRUSTED_TYPES) if you trust them",
        )
    return skops.io.loads(data, trusted=list(trusted_types) or None)


def _check_versions(caught: list[warnings.WarningMessage], policy: str) -> None:
    mismatches = [w.message for w in caught if isinstance(w.message, InconsistentVersionWarning)]
    if not mismatches:
        return
    first = mismatches[0]
    message = (f"model saved with scikit-learn {first.original_sklearn_version}, "
               f"server has {sklearn.__version__}")
    if policy == "refuse":
        raise StartupFailure(VERSION_MISMATCH, message)
    log.warning("%s (%s=warn, serving anyway)", message, "MODELOPS_SKLEARN_VERSION_POLICY")


def signature_of(estimator: object, method: str) -> Signature:
    """Derive input/output tensors from the fitted estimator's attributes and tags."""
    n_features = getattr(estimator, "n_features_in_", None)
    kind = "classifier" if is_classifier(estimator) else "regressor" if is_regressor(estimator) else "other"
    outputs = [TensorSpec("predict", _predict_datatype(estimator, kind), _predict_shape(estimator))]
    classes = getattr(estimator, "classes_", None)
    if callable(getattr(estimator, "predict_proba", None)) and classes is not None:
        outputs.append(TensorSpec("predict_proba", "FP64", (-1, len(np.atleast_1d(classes)))))
    return Signature(
        input_datatype=BYTES if _takes_text(estimator) else "FP64",
        n_features=int(n_features) if isinstance(n_features, (int, np.integer)) else None,
        allow_nan=_allows_nan(estimator),
        outputs=tuple(outputs),
        default_output=method,
        kind=kind,
        columns=column_types(estimator),
    )


def _takes_text(estimator: object) -> bool:
    first = estimator.steps[0][1] if hasattr(estimator, "steps") else estimator
    return callable(getattr(first, "build_analyzer", None))  # CountVectorizer and friends


def _allows_nan(estimator: object) -> bool:
    try:
        return bool(get_tags(estimator).input_tags.allow_nan)
    except Exception:  # not an sklearn estimator with tags: do not send it NaN
        return False


def _predict_datatype(estimator: object, kind: str) -> str:
    classes = getattr(estimator, "classes_", None)
    if kind == "classifier" and isinstance(classes, np.ndarray):
        return datatype_of(classes)
    return "FP64"


def _predict_shape(estimator: object) -> tuple[int, ...]:
    n_outputs = getattr(estimator, "n_outputs_", 1)
    return (-1, int(n_outputs)) if isinstance(n_outputs, int) and n_outputs > 1 else (-1,)
