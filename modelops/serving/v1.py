"""KServe v1 protocol: `{"instances": [[...], ...]}` in, `{"predictions": [...]}` out.

Numeric models take one list of numbers per row; text models take one string per row; DataFrame
models take one object per row keyed by column, or `{"inputs": {column: [values...]}}` (see
frames.py). Every problem is an InvalidInput that names the row or column. Pure.
"""

from __future__ import annotations

import numpy as np

from modelops.serving import frames
from modelops.serving.body import json_object
from modelops.serving.errors import InvalidInput
from modelops.serving.features import check_matrix, check_strings
from modelops.serving.model import Signature
from modelops.serving.tensors import BYTES, decode_json, describe, to_json_data


def parse_predict_request(body: bytes, signature: Signature) -> np.ndarray:
    """The feature matrix (or strings) of a v1 predict request, validated for `signature`."""
    request = json_object(body)
    if signature.columns:
        return _frame_request(request, signature)
    if "instances" not in request:
        raise InvalidInput("missing 'instances': send {\"instances\": [[feature, ...], ...]}")
    instances = request["instances"]
    if not isinstance(instances, list) or not instances:
        raise InvalidInput(f"'instances' must be a non-empty list of rows, got {describe(instances)}")
    if signature.input_datatype == BYTES:
        return check_strings(decode_json(instances, BYTES, "instances"), "instances")
    return check_matrix(_rows(instances), signature, "instances")


def _frame_request(request: dict, signature: Signature):
    """A DataFrame model's request: row objects in `instances`, or columns in `inputs`."""
    names = ", ".join(name for name, _ in signature.columns)
    if "instances" in request:
        instances = request["instances"]
        if not isinstance(instances, list) or not instances:
            raise InvalidInput(f"'instances' must be a non-empty list of rows, got {describe(instances)}")
        return frames.from_records(instances, signature.columns, signature.allow_nan)
    if isinstance(request.get("inputs"), dict):
        return frames.from_columns(request["inputs"], signature.columns, signature.allow_nan, "inputs")
    raise InvalidInput("missing 'instances': send {\"instances\": [{column: value, ...}, ...]} "
                       f"or {{\"inputs\": {{column: [values...], ...}}}} with columns {names}")


def _rows(instances: list) -> np.ndarray:
    width = None
    for index, row in enumerate(instances):
        if type(row) is not list:
            raise InvalidInput(
                f"instances[{index}] must be a list of numbers (one row), got {describe(row)}"
            )
        if width is None:
            width = len(row)
        elif len(row) != width:
            raise InvalidInput(f"instances[{index}] has {len(row)} values; instances[0] has {width}")
    flat = [value for row in instances for value in row]
    values = decode_json(flat, "FP64", "instances", row_width=width)
    return values.reshape(len(instances), width)


def predict_response(predictions: np.ndarray, steps: dict[str, np.ndarray] | None = None) -> dict:
    """The v1 response body; `steps` (pipeline mode) adds every step's predictions."""
    response: dict = {"predictions": _nested(predictions)}
    if steps is not None:
        response["steps"] = {name: _nested(result) for name, result in steps.items()}
    return response


def _nested(array: np.ndarray) -> list:
    flat = to_json_data(array)
    if array.ndim <= 1:
        return flat
    width = int(np.prod(array.shape[1:]))
    return [flat[i: i + width] for i in range(0, len(flat), width)]
