"""DataFrame models: their named, typed columns, and requests decoded into a pandas DataFrame.

A model fitted on a DataFrame records `feature_names_in_`; a `ColumnTransformer` inside it
says which columns are strings (an encoder or imputer fitted on object values). Such a model
takes, per column, strings (v2 BYTES) or numbers (v2 numeric datatypes): v1 `instances` as
objects keyed by column (or lists in column order), v1 columnar `inputs` (`{"col": [...]}`),
and v2 one tensor per column by name in any order (what MLServer's pandas codec sends). A
missing, extra or mistyped column is an InvalidInput naming it. Pure.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from modelops.serving.errors import InvalidInput
from modelops.serving.tensors import BYTES, describe

NUMBER = "FP64"
_NUMBER_TYPES = (int, float)


def column_types(estimator: object) -> tuple[tuple[str, str], ...]:
    """(name, BYTES|FP64) per input column of a model fitted on named columns; () otherwise."""
    names = getattr(estimator, "feature_names_in_", None)
    if names is None:
        return ()
    strings = _string_columns(estimator)
    return tuple((str(name), BYTES if str(name) in strings else NUMBER) for name in names)


def _string_columns(estimator: object) -> set[str]:
    found: set[str] = set()
    for transformer in _walk(estimator):
        for _, inner, columns in getattr(transformer, "transformers_", ()):
            if _fitted_on_strings(inner):
                found.update(_column_names(transformer, columns))
    return found


def _walk(estimator: object):
    yield estimator
    for _, step in getattr(estimator, "steps", ()):
        yield from _walk(step)


def _fitted_on_strings(transformer: object) -> bool:
    for step in _walk(transformer):
        values = list(getattr(step, "categories_", ()))
        statistics = getattr(step, "statistics_", None)
        if statistics is not None:
            values.append(np.asarray(statistics))
        if any(np.asarray(v).dtype.kind in "OUS" for v in values):
            return True
    return False


def _column_names(transformer: object, columns: object) -> list[str]:
    names = [str(n) for n in getattr(transformer, "feature_names_in_", ())]
    if isinstance(columns, str):
        return [columns]
    if callable(columns) or isinstance(columns, slice):
        return []
    picked = np.asarray(columns)
    if picked.dtype.kind == "b":
        return [n for n, keep in zip(names, picked) if keep]
    if picked.dtype.kind in "iu":
        return [names[i] for i in picked if 0 <= i < len(names)]
    return [str(n) for n in picked]


def check_names(given: Sequence[str], columns: Sequence[tuple[str, str]], where: str) -> None:
    """InvalidInput naming the first missing, then the first unknown, column."""
    expected = [name for name, _ in columns]
    missing = [name for name in expected if name not in given]
    if missing:
        raise InvalidInput(f"{where}: missing column {missing[0]!r}; this model takes "
                           f"{', '.join(expected)}")
    extra = [name for name in given if name not in expected]
    if extra:
        raise InvalidInput(f"{where}: unknown column {extra[0]!r}; this model takes "
                           f"{', '.join(expected)}")


def column_array(values: Sequence, datatype: str, name: str, allow_nan: bool) -> np.ndarray:
    """One column's values as strings (object array) or float64; InvalidInput naming it."""
    if datatype == BYTES:
        for index, value in enumerate(values):
            if type(value) is not str:
                raise InvalidInput(f"column {name!r}: row {index} is {describe(value)}; "
                                   "this column takes strings")
        array = np.empty(len(values), dtype=object)
        array[:] = list(values)
        return array
    for index, value in enumerate(values):
        if value is None and allow_nan:
            continue
        if type(value) not in _NUMBER_TYPES:
            raise InvalidInput(f"column {name!r}: row {index} is {describe(value)}; "
                               "this column takes numbers")
    try:
        array = np.array([np.nan if v is None else v for v in values], dtype=np.float64)
    except OverflowError:
        raise InvalidInput(f"column {name!r}: a value is out of range") from None
    bad = ~np.isfinite(array) if not allow_nan else np.isinf(array)
    if bad.any():
        raise InvalidInput(f"column {name!r}: row {int(np.flatnonzero(bad)[0])} is not a "
                           "finite number")
    return array


def frame(arrays: Mapping[str, np.ndarray], columns: Sequence[tuple[str, str]], where: str):
    """The DataFrame the model was fitted on, columns in its order; rows must agree."""
    import pandas as pd

    rows = {len(arrays[name]) for name, _ in columns}
    if len(rows) > 1:
        raise InvalidInput(f"{where}: columns disagree on the number of rows: {sorted(rows)}")
    if rows == {0}:
        raise InvalidInput(f"{where}: no rows to predict")
    return pd.DataFrame({name: arrays[name] for name, _ in columns}, copy=False)


def from_records(instances: list, columns: Sequence[tuple[str, str]], allow_nan: bool):
    """v1 instances: objects keyed by column, or lists in the model's column order."""
    names = [name for name, _ in columns]
    gathered: dict[str, list] = {name: [] for name in names}
    for index, row in enumerate(instances):
        if type(row) is list:
            if len(row) != len(names):
                raise InvalidInput(f"instances[{index}] has {len(row)} values; this model takes "
                                   f"{len(names)} columns: {', '.join(names)}")
            row = dict(zip(names, row))
        elif type(row) is not dict:
            raise InvalidInput(f"instances[{index}] must be an object keyed by column, got "
                               f"{describe(row)}")
        if len(row) != len(names) or any(name not in row for name in names):
            check_names(list(row), columns, f"instances[{index}]")
        for name in names:
            gathered[name].append(row[name])
    return from_columns(gathered, columns, allow_nan, "instances")


def from_columns(data: Mapping[str, object], columns: Sequence[tuple[str, str]],
                 allow_nan: bool, where: str):
    """Columnar `{"col": [values...]}` into the model's DataFrame."""
    check_names(list(data), columns, where)
    arrays = {}
    for name, datatype in columns:
        values = data[name]
        if not isinstance(values, list):
            raise InvalidInput(f"{where}: column {name!r} must be a list of values, got "
                               f"{describe(values)}")
        arrays[name] = column_array(values, datatype, name, allow_nan)
    return frame(arrays, columns, where)


def example_row(estimator: object, columns: Sequence[tuple[str, str]], fill: float = 0.0) -> dict:
    """A row for the load-time self-test: a category the model knows per string column."""
    known: dict[str, str] = {}
    for transformer in _walk(estimator):
        for _, inner, picked in getattr(transformer, "transformers_", ()):
            firsts = [np.asarray(c)[0] for step in _walk(inner)
                      for c in getattr(step, "categories_", ()) if len(c)]
            for name, first in zip(_column_names(transformer, picked), firsts):
                if isinstance(first, str):
                    known.setdefault(name, first)
    return {name: known.get(name, "") if datatype == BYTES else fill
            for name, datatype in columns}
