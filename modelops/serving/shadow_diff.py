"""Shadow traffic, the pure half: what the pod's annotations ask for, and how two answers compare.

`parse_target` turns the pod's annotations into a ShadowTarget (None: no `shadow-url`, shadow
off); a bad value raises ValueError naming the annotation. `candidate_output` picks, from the
candidate's JSON answer, the output the serving pod compares with its own first output (v1
`predictions`; v2 the output of the same name). `disagreements` counts the rows on which the two
answers differ:

- classifier labels: the labels differ (numbers compared as numbers, so 1 and 1.0 agree;
  anything else as text);
- classifier probabilities (`predict_proba`, rows x classes): the most probable class differs
  (argmax, first on ties; both sides are assumed to order `classes_` alike);
- regressors and other numeric outputs: some value v (ours) and w (the candidate's) of the row
  has |v - w| > tolerance * max(|v|, |w|), a symmetric relative difference (equal values, zeros
  included, agree; NaN agrees only with NaN, an infinity only with the same infinity);
- other non-numeric outputs: the texts differ.

A candidate answer with another row count or row width raises BadAnswer.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit

import numpy as np

from modelops import contract as c

DEFAULT_PERCENT = 100.0
DEFAULT_TOLERANCE = 0.01
_SCALARS = (str, int, float, bool, type(None))
_VERSION = re.compile(r"^[A-Za-z0-9._+-]{1,128}$")
_HEADER_NAME = re.compile(c.CANARY_HASH_HEADER_PATTERN)


class BadAnswer(ValueError):
    """The candidate answered 2xx with something that cannot be compared with our answer."""


@dataclass(frozen=True)
class ShadowTarget:
    url: str
    """http(s)://host[:port] of the candidate revision (its Service), no trailing slash."""
    version: str
    percent: float
    """Share of successful predict requests copied, 0-100."""
    tolerance: float
    """Relative tolerance for numeric (regressor) outputs."""
    canary_percent: float = 0.0
    """Share of unpinned predict requests the candidate answers instead (pinned.py), 0-100."""
    canary_hash_header: str = ""
    """When set, requests with the same value of this header go to the same side."""


def parse_target(annotations: Mapping[str, str]) -> ShadowTarget | None:
    url = annotations.get(c.ANNOTATION_SHADOW_URL, "").strip()
    if not url:
        return None
    version = annotations.get(c.ANNOTATION_SHADOW_VERSION, "").strip()
    if not _VERSION.match(version):
        raise ValueError(f"{c.ANNOTATION_SHADOW_VERSION} must be the candidate's version "
                         f"(letters, digits, ._+-), got {version!r}")
    hash_header = annotations.get(c.ANNOTATION_CANARY_HASH_HEADER, "").strip()
    if hash_header and not _HEADER_NAME.match(hash_header):
        raise ValueError(f"{c.ANNOTATION_CANARY_HASH_HEADER} must be an HTTP header name, "
                         f"got {hash_header!r}")
    return ShadowTarget(_base_url(url), version,
                        _number(annotations, c.ANNOTATION_SHADOW_PERCENT, DEFAULT_PERCENT, 100.0),
                        _number(annotations, c.ANNOTATION_SHADOW_TOLERANCE, DEFAULT_TOLERANCE, 1e9),
                        _number(annotations, c.ANNOTATION_CANARY_PERCENT, 0.0, 100.0),
                        hash_header)


def _base_url(url: str) -> str:
    problem = f"{c.ANNOTATION_SHADOW_URL} must be http(s)://host[:port], got {url!r}"
    parts = urlsplit(url)
    try:
        parts.port  # noqa: B018 - raises ValueError for a port that is not a number
    except ValueError:
        raise ValueError(problem) from None
    if (parts.scheme not in ("http", "https") or not parts.hostname or parts.username
            or parts.path not in ("", "/") or parts.query or parts.fragment):
        raise ValueError(problem)
    return f"{parts.scheme}://{parts.netloc}"


def _number(annotations: Mapping[str, str], key: str, default: float, high: float) -> float:
    raw = annotations.get(key, "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        value = float("nan")
    if not 0.0 <= value <= high:  # also false for NaN
        raise ValueError(f"{key} must be a number from 0 to {high:g}, got {raw!r}")
    return value


def candidate_output(protocol: str, answer: object, output: str) -> np.ndarray:
    """The candidate's array for `output` from its JSON answer (v1 or v2)."""
    if not isinstance(answer, dict):
        raise BadAnswer("the answer is not a JSON object")
    if protocol == "v1":
        if "predictions" not in answer:
            raise BadAnswer("the v1 answer has no 'predictions'")
        return _array(answer["predictions"])
    for tensor in answer.get("outputs") or ():
        if isinstance(tensor, dict) and tensor.get("name") == output:
            data = _array(tensor.get("data"))
            try:
                return data.reshape(tensor.get("shape"))
            except (TypeError, ValueError):
                raise BadAnswer(f"output {output!r}: data does not fit shape "
                                f"{tensor.get('shape')!r}") from None
    raise BadAnswer(f"the v2 answer has no output {output!r}")


def _array(values: object) -> np.ndarray:
    if not isinstance(values, list):
        raise BadAnswer(f"expected a list of predictions, got {type(values).__name__}")
    try:
        array = np.array(values)
    except ValueError:  # ragged rows
        raise BadAnswer("the predictions are not a rectangular array") from None
    if array.dtype.kind == "O" and not all(isinstance(v, _SCALARS) for v in array.flat):
        raise BadAnswer("unexpected predictions: values must be numbers, text or null")
    if array.dtype.kind not in "biufUO" or array.ndim == 0:
        raise BadAnswer(f"unexpected predictions of type {array.dtype}")
    return array


def disagreements(ours: np.ndarray, theirs: np.ndarray, kind: str, tolerance: float) -> int:
    """Rows of `ours` (our answer) on which `theirs` (the candidate's) disagrees."""
    rows = len(ours)
    if theirs.ndim == 0 or len(theirs) != rows:
        raise BadAnswer(f"the candidate answered {theirs.size if theirs.ndim == 0 else len(theirs)} "
                        f"rows for {rows}")
    a, b = ours.reshape(rows, -1), theirs.reshape(rows, -1)
    if a.shape != b.shape:
        raise BadAnswer(f"the candidate's rows have {b.shape[1]} values, ours {a.shape[1]}")
    numeric = a.dtype.kind in "biuf" and b.dtype.kind in "biuf"
    if not numeric:
        differ = _texts(a) != _texts(b)
    elif kind == "classifier" and a.shape[1] > 1:
        return int((np.argmax(a, axis=1) != np.argmax(b, axis=1)).sum())
    elif kind == "classifier":
        differ = a != b
    else:
        differ = ~_close(a.astype(np.float64), b.astype(np.float64), tolerance)
    return int(differ.any(axis=1).sum())


def _close(a: np.ndarray, b: np.ndarray, tolerance: float) -> np.ndarray:
    with np.errstate(invalid="ignore", over="ignore"):
        relative = np.abs(a - b) <= tolerance * np.maximum(np.abs(a), np.abs(b))
    finite = np.isfinite(a) & np.isfinite(b)
    return np.where(finite, relative, (a == b) | (np.isnan(a) & np.isnan(b)))


def _texts(array: np.ndarray) -> np.ndarray:
    return np.vectorize(_text, otypes=[object])(array) if array.size else array.astype(object)


def _text(value: object) -> str:
    if isinstance(value, (float, np.floating)) and float(value).is_integer():
        value = int(value)
    return str(value)
