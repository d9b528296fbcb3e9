"""Tensor decoding per datatype (JSON and binary), flattening, and output encoding."""

from __future__ import annotations

import math
import struct

import numpy as np
import pytest

from modelops.serving.errors import InvalidInput
from modelops.serving.tensors import (
    NUMERIC_DTYPES, datatype_of, decode_binary, decode_json, flatten, to_json_data,
)


@pytest.mark.parametrize(("datatype", "values", "expected_dtype"), [
    ("FP64", [1, 2.5, -3], np.float64), ("FP32", [1.5, 2], np.float32), ("FP16", [0.5], np.float16),
    ("INT64", [1, -2], np.int64), ("INT32", [2**31 - 1], np.int32), ("INT8", [-128, 127], np.int8),
    ("UINT8", [0, 255], np.uint8), ("UINT64", [2**64 - 1], np.uint64), ("BOOL", [True, False], np.bool_),
])
def test_valid_values_decode(datatype, values, expected_dtype):
    array = decode_json(values, datatype, "input 'x'")
    assert array.dtype == expected_dtype
    assert array.tolist() == pytest.approx(values)


@pytest.mark.parametrize(("datatype", "values", "fragment"), [
    ("FP64", [1, "2"], "element 1 is a string"),
    ("FP64", [True], "element 0 is a boolean"),
    ("FP64", [[1]], "element 0 is a list"),
    ("FP64", [{"a": 1}], "an object"),
    ("FP64", [10**400], "out of range"),
    ("FP64", [math.inf], "infinite"),
    ("FP32", [1e39], "infinite or out of range for float32"),
    ("INT64", [1.5], "element 0 is a number"),
    ("INT64", [None], "null"),
    ("INT64", [2**63], "out of range for datatype INT64"),
    ("INT32", [2**31], "out of range for datatype INT32"),
    ("UINT8", [-1], "out of range"),
    ("BOOL", [1], "an integer"),
    ("BYTES", [1], "BYTES needs strings"),
])
def test_wrong_values_are_refused_with_their_position(datatype, values, fragment):
    with pytest.raises(InvalidInput) as raised:
        decode_json(values, datatype, "input 'x'")
    assert raised.value.message.startswith("input 'x'") and fragment in raised.value.message


def test_rows_are_named_when_the_width_is_known():
    with pytest.raises(InvalidInput, match="row 1, feature 2 is a string"):
        decode_json([1, 2, 3, 4, 5, "x"], "FP64", "instances", row_width=3)


def test_null_becomes_nan_in_float_tensors():
    array = decode_json([1.0, None, float("nan")], "FP64", "x")
    assert np.isnan(array[1]) and np.isnan(array[2])


def test_flatten_nested_and_flat():
    assert flatten([[1, 2], [3, [4]]], 3, "x") == [1, 2, 3, 4]
    flat = [1, 2, 3]
    assert flatten(flat, 1, "x") is flat
    with pytest.raises(InvalidInput, match="nested deeper than its shape"):
        flatten([[1, [2]]], 2, "x")
    with pytest.raises(InvalidInput, match="data must be a list"):
        flatten(5, 1, "x")


def test_binary_numeric_little_endian():
    raw = np.array([1.5, -2.0, 3.25], dtype="<f4").tobytes()
    assert decode_binary(raw, "FP32", 3, "x").tolist() == [1.5, -2.0, 3.25]
    raw = np.array([7, -9], dtype="<i8").tobytes()
    assert decode_binary(raw, "INT64", 2, "x").tolist() == [7, -9]


def test_binary_size_must_match_the_shape():
    with pytest.raises(InvalidInput, match="expected 3 x 4"):
        decode_binary(b"\0" * 8, "FP32", 3, "x")


def test_binary_floats_are_checked_for_infinity():
    with pytest.raises(InvalidInput, match="infinite"):
        decode_binary(np.array([np.inf], dtype="<f8").tobytes(), "FP64", 1, "x")


def bytes_elements(*items: bytes) -> bytes:
    return b"".join(struct.pack("<I", len(item)) + item for item in items)


def test_binary_bytes_elements():
    array = decode_binary(bytes_elements(b"hello", b"", "é".encode()), "BYTES", 3, "x")
    assert array.tolist() == ["hello", "", "é"]


@pytest.mark.parametrize(("raw", "count", "fragment"), [
    (b"\x05\x00", 1, "ends early"),
    (bytes_elements(b"ab")[:-1], 1, "longer than the data"),
    (bytes_elements(b"ab") + b"x", 1, "left over"),
    (bytes_elements(b"\xff\xfe"), 1, "not UTF-8"),
])
def test_broken_binary_bytes(raw, count, fragment):
    with pytest.raises(InvalidInput, match=fragment):
        decode_binary(raw, "BYTES", count, "x")


def test_datatype_of_every_numeric_dtype_round_trips():
    for name, dtype in NUMERIC_DTYPES.items():
        assert datatype_of(np.zeros(1, dtype=dtype)) == name
    assert datatype_of(np.array(["a"])) == "BYTES"
    assert datatype_of(np.array(["a"], dtype=object)) == "BYTES"


def test_to_json_data_is_flat_and_plain():
    assert to_json_data(np.array([[1, 2], [3, 4]])) == [1, 2, 3, 4]
    assert to_json_data(np.array([b"a", "b"], dtype=object)) == ["a", "b"]
    assert to_json_data(np.array(["x", "y"])) == ["x", "y"]
