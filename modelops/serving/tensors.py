"""Open Inference Protocol tensors: datatypes, decoding request data, encoding outputs.

Request data arrives as JSON (flat or nested, row-major) or as raw little-endian bytes (the
binary tensor extension that tritonclient uses by default). Every value is checked against the
declared datatype, so a string in an FP32 tensor, 1.5 in an INT64 tensor or an out-of-range
integer is an InvalidInput naming the tensor and the position. JSON null (or a NaN literal)
becomes NaN in float tensors; whether NaN is acceptable is the model's call (see protocol.py).
Pure.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence

import numpy as np

from modelops.serving.errors import InvalidInput

NUMERIC_DTYPES: dict[str, np.dtype] = {
    name: np.dtype(kind)
    for name, kind in {
        "BOOL": np.bool_, "INT8": np.int8, "INT16": np.int16, "INT32": np.int32,
        "INT64": np.int64, "UINT8": np.uint8, "UINT16": np.uint16, "UINT32": np.uint32,
        "UINT64": np.uint64, "FP16": np.float16, "FP32": np.float32, "FP64": np.float64,
    }.items()
}
BYTES = "BYTES"
DATATYPES = (*NUMERIC_DTYPES, BYTES)

_FLOAT_VALUES = (int, float, type(None))
_JSON_NAMES = {bool: "a boolean", str: "a string", type(None): "null", dict: "an object",
               list: "a list", int: "an integer", float: "a number"}


def describe(value: object) -> str:
    return _JSON_NAMES.get(type(value), type(value).__name__)


def element_count(shape: Sequence[int]) -> int:
    count = 1
    for dim in shape:
        count *= dim
    return count


def flatten(data: object, max_depth: int, where: str) -> list:
    """Row-major flat list of `data` (flat or nested lists, at most `max_depth` deep)."""
    if not isinstance(data, list):
        raise InvalidInput(f"{where}: data must be a list, got {describe(data)}")
    if not any(type(item) is list for item in data):
        return data
    flat: list = []
    stack = [(iter(data), 1)]
    while stack:
        items, depth = stack[-1]
        for item in items:
            if type(item) is list:
                if depth >= max_depth:
                    raise InvalidInput(f"{where}: data is nested deeper than its shape")
                stack.append((iter(item), depth + 1))
                break
            flat.append(item)
        else:
            stack.pop()
    return flat


def position(index: int, row_width: int | None) -> str:
    """`element 7`, or `row 1, feature 3` when the values are rows of `row_width`."""
    if row_width:
        return f"row {index // row_width}, feature {index % row_width}"
    return f"element {index}"


def decode_json(values: list, datatype: str, where: str, row_width: int | None = None) -> np.ndarray:
    """A flat array of `datatype` from flat JSON values; InvalidInput on any wrong value."""
    if datatype == BYTES:
        return _decode_json_strings(values, where)
    dtype = NUMERIC_DTYPES[datatype]
    if dtype.kind == "f":
        allowed: tuple[type, ...] = _FLOAT_VALUES
    elif dtype.kind == "b":
        allowed = (bool,)
    else:
        allowed = (int,)
    for index, value in enumerate(values):
        if type(value) not in allowed:
            raise InvalidInput(
                f"{where}: {position(index, row_width)} is {describe(value)}, "
                f"not valid for datatype {datatype}"
            )
    try:
        array = np.array(values, dtype=np.float64 if dtype.kind == "f" else dtype)
    except (OverflowError, ValueError):
        raise InvalidInput(f"{where}: a value is out of range for datatype {datatype}") from None
    return _checked_float(array, dtype, where, row_width) if dtype.kind == "f" else array


def _checked_float(array: np.ndarray, dtype: np.dtype, where: str,
                   row_width: int | None = None) -> np.ndarray:
    with np.errstate(over="ignore"):
        array = array.astype(dtype, copy=False)
    infinite = np.isinf(array)
    if infinite.any():
        index = int(np.flatnonzero(infinite)[0])
        raise InvalidInput(
            f"{where}: {position(index, row_width)} is infinite or out of range for {dtype.name}"
        )
    return array


def _decode_json_strings(values: list, where: str) -> np.ndarray:
    for index, value in enumerate(values):
        if type(value) is not str:
            raise InvalidInput(f"{where}: element {index} is {describe(value)}, BYTES needs strings")
    array = np.empty(len(values), dtype=object)
    array[:] = values
    return array


def decode_binary(raw: bytes, datatype: str, count: int, where: str) -> np.ndarray:
    """A flat array from the binary tensor extension's raw bytes (little-endian)."""
    if datatype == BYTES:
        return _decode_binary_strings(raw, count, where)
    dtype = NUMERIC_DTYPES[datatype].newbyteorder("<")
    if len(raw) != count * dtype.itemsize:
        raise InvalidInput(
            f"{where}: {len(raw)} bytes of binary data, expected {count} x {dtype.itemsize}"
        )
    array = np.frombuffer(raw, dtype=dtype).astype(dtype.newbyteorder("="))
    return _checked_float(array, array.dtype, where) if dtype.kind == "f" else array


def _decode_binary_strings(raw: bytes, count: int, where: str) -> np.ndarray:
    values, offset = [], 0
    for _ in range(count):
        if offset + 4 > len(raw):
            raise InvalidInput(f"{where}: binary BYTES data ends early")
        (length,) = struct.unpack_from("<I", raw, offset)
        offset += 4
        if offset + length > len(raw):
            raise InvalidInput(f"{where}: binary BYTES element longer than the data")
        try:
            values.append(raw[offset: offset + length].decode("utf-8"))
        except UnicodeDecodeError:
            raise InvalidInput(f"{where}: binary BYTES element is not UTF-8") from None
        offset += length
    if offset != len(raw):
        raise InvalidInput(f"{where}: {len(raw) - offset} bytes left over after {count} BYTES elements")
    return _decode_json_strings(values, where)


def datatype_of(array: np.ndarray) -> str:
    """The OIP datatype that represents `array`'s dtype (strings and objects are BYTES)."""
    for name, dtype in NUMERIC_DTYPES.items():
        if array.dtype == dtype:
            return name
    return BYTES


def to_json_data(array: np.ndarray) -> list:
    """Flat, JSON-ready list of `array`'s values in row-major order."""
    values = array.reshape(-1).tolist()
    if array.dtype.kind in "OSV":
        return [v.decode("utf-8", "replace") if isinstance(v, bytes) else v for v in values]
    return values
