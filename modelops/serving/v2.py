"""Open Inference Protocol (v2) REST: parse infer requests, build responses and metadata.

A request is `{"id"?, "parameters"?, "inputs": [{name, shape, datatype, data, parameters?}],
"outputs"?: [{name, parameters?}]}`; data is row-major, flat or nested, or raw bytes after the
JSON header when `Inference-Header-Content-Length` is set (the binary tensor extension, which
tritonclient uses by default). Inputs become one feature matrix: a single [rows, features]
tensor, or several [rows] / [rows, k] tensors joined column-wise in order; for a DataFrame model,
one tensor per column, matched by name (frames.py). Shapes are bounded before anything is
allocated; output names must be distinct. Outputs are always JSON. Pure.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from modelops.serving import frames
from modelops.serving.body import json_object
from modelops.serving.errors import InvalidInput
from modelops.serving.features import check_matrix, check_strings
from modelops.serving.model import Signature
from modelops.serving.tensors import (
    BYTES, DATATYPES, decode_binary, decode_json, describe, datatype_of, element_count, flatten,
    to_json_data,
)

MAX_RANK = 8
MAX_DIMENSION = 2**31 - 1
MAX_LENGTH_DIGITS = 12
"""Inference-Header-Content-Length longer than this is refused before int() (4300+ digits raise)."""
PLATFORM = "scikit-learn"


@dataclass(frozen=True)
class InputTensor:
    name: str
    datatype: str
    shape: tuple[int, ...]
    data: np.ndarray
    """Flat, row-major."""


@dataclass(frozen=True)
class InferRequest:
    id: str | None
    parameters: dict
    inputs: tuple[InputTensor, ...]
    outputs: tuple[str, ...] = field(default=())
    """Requested output names; empty = the model's default output."""


def parse_infer_request(body: bytes, header_length: str | None = None) -> InferRequest:
    """Parse and type-check a v2 infer request; InvalidInput naming the field on any problem."""
    json_part, binary = _split_binary(body, header_length)
    request = json_object(json_part)
    request_id = request.get("id")
    if request_id is not None and not isinstance(request_id, str):
        raise InvalidInput(f"'id' must be a string, got {describe(request_id)}")
    parameters = _object(request.get("parameters"), "parameters")
    raw_inputs = request.get("inputs")
    if not isinstance(raw_inputs, list) or not raw_inputs:
        raise InvalidInput("'inputs' must be a non-empty list of tensors")
    inputs, offset = [], 0
    for index, raw in enumerate(raw_inputs):
        tensor, offset = _parse_input(raw, index, binary, offset, len(body))
        inputs.append(tensor)
    if offset != len(binary):
        raise InvalidInput(f"{len(binary) - offset} bytes of binary data belong to no input")
    return InferRequest(request_id, parameters, tuple(inputs), _parse_outputs(request.get("outputs")))


def _split_binary(body: bytes, header_length: str | None) -> tuple[bytes, bytes]:
    if header_length is None:
        return body, b""
    if (len(header_length) > MAX_LENGTH_DIGITS or not header_length.isdigit()
            or not 0 < int(header_length) <= len(body)):
        raise InvalidInput(
            f"Inference-Header-Content-Length {header_length!r} must be the JSON header's size "
            f"(1..{len(body)})"
        )
    size = int(header_length)
    return body[:size], body[size:]


def _object(value: object, where: str) -> dict:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise InvalidInput(f"'{where}' must be an object, got {describe(value)}")
    return value


def _parse_input(raw: object, index: int, binary: bytes, offset: int,
                 max_elements: int) -> tuple[InputTensor, int]:
    if not isinstance(raw, dict):
        raise InvalidInput(f"inputs[{index}] must be an object, got {describe(raw)}")
    name = raw.get("name")
    if not isinstance(name, str) or not name:
        raise InvalidInput(f"inputs[{index}].name must be a non-empty string")
    where = f"input {name!r}"
    datatype = raw.get("datatype")
    if datatype not in DATATYPES:
        raise InvalidInput(f"{where}: datatype {datatype!r} is not one of {', '.join(DATATYPES)}")
    shape = _parse_shape(raw.get("shape"), where, max_elements)
    count = element_count(shape)
    binary_size = _object(raw.get("parameters"), f"inputs[{index}].parameters").get("binary_data_size")
    if binary_size is not None:
        if type(binary_size) is not int or not 0 <= binary_size <= len(binary) - offset:
            raise InvalidInput(f"{where}: binary_data_size {binary_size!r} does not fit the binary data")
        data = decode_binary(binary[offset: offset + binary_size], datatype, count, where)
        return InputTensor(name, datatype, shape, data), offset + binary_size
    if "data" not in raw:
        raise InvalidInput(f"{where}: missing 'data'")
    flat = flatten(raw["data"], max(len(shape), 1), where)
    if len(flat) != count:
        raise InvalidInput(f"{where}: shape {list(shape)} needs {count} values, data has {len(flat)}")
    width = shape[-1] if len(shape) == 2 else None
    return InputTensor(name, datatype, shape, decode_json(flat, datatype, where, width)), offset


def _parse_shape(shape: object, where: str, max_elements: int) -> tuple[int, ...]:
    if not isinstance(shape, list) or not 1 <= len(shape) <= MAX_RANK:
        raise InvalidInput(f"{where}: shape must be a list of 1 to {MAX_RANK} sizes")
    if any(type(dim) is not int or not 0 <= dim <= MAX_DIMENSION for dim in shape):
        raise InvalidInput(f"{where}: shape {shape!r} must hold non-negative integers up to {MAX_DIMENSION}")
    if element_count(shape) > max_elements:
        raise InvalidInput(f"{where}: shape {shape!r} has more elements than the request "
                           f"has bytes ({max_elements})")
    return tuple(shape)


def _parse_outputs(raw: object) -> tuple[str, ...]:
    if raw is None:
        return ()
    if not isinstance(raw, list):
        raise InvalidInput(f"'outputs' must be a list, got {describe(raw)}")
    names = []
    for index, item in enumerate(raw):
        name = item.get("name") if isinstance(item, dict) else None
        if not isinstance(name, str) or not name:
            raise InvalidInput(f"outputs[{index}] must be an object with a string 'name'")
        if name in names:
            raise InvalidInput(f"outputs[{index}]: output {name!r} is requested more than once")
        names.append(name)
    return tuple(names)


def features_from_inputs(inputs: Sequence[InputTensor], signature: Signature) -> np.ndarray:
    """One feature matrix (or 1-D strings for text models) from the request's input tensors."""
    if signature.columns and (len(inputs) > 1 or inputs[0].name in dict(signature.columns)
                              or any(t == BYTES for _, t in signature.columns)):
        return _frame_input(inputs, signature)
    if signature.input_datatype == BYTES:
        return _text_input(inputs)
    matrix = _matrix_input(inputs, signature)
    if signature.columns:  # a numeric DataFrame model sent one matrix: name its columns
        import pandas as pd

        return pd.DataFrame(matrix, columns=[name for name, _ in signature.columns])
    return matrix


def _frame_input(inputs: Sequence[InputTensor], signature: Signature):
    """One tensor per column, by name, in any order (MLServer's pandas codec sends this)."""
    names = [tensor.name for tensor in inputs]
    if len(set(names)) != len(names):
        duplicate = next(n for n in names if names.count(n) > 1)
        raise InvalidInput(f"input {duplicate!r} is sent more than once")
    frames.check_names(names, signature.columns, "inputs")
    types = dict(signature.columns)
    arrays = {}
    for tensor in inputs:
        where = f"input {tensor.name!r}"
        if len(tensor.shape) > 2 or (len(tensor.shape) == 2 and tensor.shape[1] != 1):
            raise InvalidInput(f"{where}: a column is shape [rows] or [rows, 1], got {list(tensor.shape)}")
        wanted = types[tensor.name]
        if (wanted == BYTES) != (tensor.datatype == BYTES):
            raise InvalidInput(f"{where}: column {tensor.name!r} takes "
                               f"{'BYTES (strings)' if wanted == BYTES else 'numbers'}, "
                               f"not {tensor.datatype}")
        data = tensor.data
        if wanted != BYTES:
            data = data.astype(np.float64, copy=False)
            if not signature.allow_nan and np.isnan(data).any():
                raise InvalidInput(f"{where}: row {int(np.flatnonzero(np.isnan(data))[0])} is "
                                   "null/NaN; this model does not accept missing values")
        arrays[tensor.name] = data
    return frames.frame(arrays, signature.columns, "inputs")


def _matrix_input(inputs: Sequence[InputTensor], signature: Signature) -> np.ndarray:
    for tensor in inputs:
        if tensor.datatype == BYTES:
            raise InvalidInput(f"input {tensor.name!r}: this model takes numbers, not BYTES")
        if len(tensor.shape) > 2:
            raise InvalidInput(f"input {tensor.name!r}: shape {list(tensor.shape)} has more than 2 dimensions")
    rows = {tensor.shape[0] for tensor in inputs}
    if len(rows) > 1:
        raise InvalidInput(f"inputs disagree on the number of rows: {sorted(rows)}")
    n_rows = rows.pop()
    columns = [tensor.data.astype(np.float64, copy=False)
               .reshape(n_rows, tensor.shape[1] if len(tensor.shape) == 2 else 1)
               for tensor in inputs]
    matrix = columns[0] if len(columns) == 1 else np.concatenate(columns, axis=1)
    expected = signature.n_features
    if len(inputs) == 1 and len(inputs[0].shape) == 1 and expected and expected > 1 and n_rows == expected:
        raise InvalidInput(
            f"input {inputs[0].name!r}: shape [{n_rows}] is {n_rows} rows of 1 feature; "
            f"for one row of {expected} features send shape [1, {expected}]"
        )
    return check_matrix(matrix, signature, "inputs")


def _text_input(inputs: Sequence[InputTensor]) -> np.ndarray:
    if len(inputs) != 1:
        raise InvalidInput("this model takes exactly one BYTES input (one string per row)")
    tensor = inputs[0]
    if tensor.datatype != BYTES:
        raise InvalidInput(f"input {tensor.name!r}: this model takes BYTES (text), not {tensor.datatype}")
    if len(tensor.shape) > 2 or (len(tensor.shape) == 2 and tensor.shape[1] != 1):
        raise InvalidInput(f"input {tensor.name!r}: shape must be [rows] or [rows, 1]")
    return check_strings(tensor.data, f"input {tensor.name!r}")


def output_tensor(name: str, array: np.ndarray) -> dict:
    return {"name": name, "shape": list(array.shape), "datatype": datatype_of(array),
            "data": to_json_data(array)}


def infer_response(*, model_name: str, model_version: str, request_id: str,
                   outputs: Sequence[dict]) -> dict:
    response = {"model_name": model_name, "id": request_id, "outputs": list(outputs)}
    if model_version:
        response["model_version"] = model_version
    return response


def model_metadata(name: str, version: str, signature: Signature, platform: str = PLATFORM) -> dict:
    return {
        "name": name,
        "versions": [version] if version else [],
        "platform": platform,
        "inputs": [spec.as_json() for spec in signature.inputs],
        "outputs": [spec.as_json() for spec in signature.outputs],
    }
