"""Body limits (plain, chunked, gzip, deflate) and JSON parsing errors."""

from __future__ import annotations

import gzip
import io
import zlib

import pytest

from modelops.serving.body import json_object, parse_json, read_body
from modelops.serving.errors import InvalidInput, PayloadTooLarge, UnsupportedMediaType

LIMIT = 4096


def environ(body: bytes, *, length: bool = True, encoding: str | None = None, **extra) -> dict:
    env = {"wsgi.input": io.BytesIO(body), **extra}
    if length:
        env["CONTENT_LENGTH"] = str(len(body))
    if encoding:
        env["HTTP_CONTENT_ENCODING"] = encoding
    return env


def test_plain_body_within_the_limit():
    assert read_body(environ(b"x" * LIMIT), LIMIT) == b"x" * LIMIT


def test_declared_length_over_the_limit_is_refused_before_reading():
    stream = io.BytesIO(b"x" * 10)
    with pytest.raises(PayloadTooLarge, match="limit is 4096"):
        read_body({"wsgi.input": stream, "CONTENT_LENGTH": str(LIMIT + 1)}, LIMIT)
    assert stream.tell() == 0


def test_chunked_body_without_length_is_capped():
    assert read_body(environ(b"y" * 100, length=False), LIMIT) == b"y" * 100
    with pytest.raises(PayloadTooLarge):
        read_body(environ(b"y" * (LIMIT + 1), length=False), LIMIT)


def test_gzip_and_deflate_bodies_are_decompressed():
    data = b'{"instances": [[1, 2]]}'
    assert read_body(environ(gzip.compress(data), encoding="gzip"), LIMIT) == data
    assert read_body(environ(zlib.compress(data), encoding="deflate"), LIMIT) == data
    assert read_body(environ(gzip.compress(data), length=False, encoding="GZIP"), LIMIT) == data


def test_gzip_bomb_is_refused_at_the_limit():
    bomb = gzip.compress(b"0" * (50 * LIMIT))
    assert len(bomb) < LIMIT
    with pytest.raises(PayloadTooLarge, match="decompressed"):
        read_body(environ(bomb, encoding="gzip"), LIMIT)
    with pytest.raises(PayloadTooLarge, match="decompressed"):
        read_body(environ(bomb, length=False, encoding="gzip"), LIMIT)


def test_endless_empty_deflate_blocks_are_refused():
    # An empty stored block is 5 bytes of input and no output: cap the compressed side too.
    padding = zlib.compressobj(wbits=-15)
    blocks = b"".join(padding.compress(b"") + padding.flush(zlib.Z_FULL_FLUSH) for _ in range(3000))
    with pytest.raises(PayloadTooLarge, match="^compressed request body"):
        read_body(environ(b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\xff" + blocks, length=False,
                          encoding="gzip"), LIMIT)


@pytest.mark.parametrize(("body", "fragment"), [
    (b"not gzip at all", "not valid gzip"),
    (gzip.compress(b"{}")[:-6], "truncated"),
])
def test_broken_compressed_bodies(body, fragment):
    with pytest.raises(InvalidInput, match=fragment):
        read_body(environ(body, encoding="gzip"), LIMIT)


def test_unknown_encoding_is_415():
    with pytest.raises(UnsupportedMediaType, match="br"):
        read_body(environ(b"{}", encoding="br"), LIMIT)


def test_bad_content_length_is_400():
    with pytest.raises(InvalidInput, match="Content-Length"):
        read_body({"wsgi.input": io.BytesIO(b""), "CONTENT_LENGTH": "-1"}, LIMIT)


@pytest.mark.parametrize(("body", "fragment"), [
    (b"", "empty"), (b"   ", "empty"), (b"{bad", "malformed JSON"), (b'{"a": 1,}', "malformed JSON"),
    (b"[" * 100_000, "malformed JSON"), (b'{"a": "\xff"}', "malformed JSON"),
])
def test_json_errors(body, fragment):
    with pytest.raises(InvalidInput, match=fragment):
        parse_json(body)


def test_non_finite_literals_parse_as_floats():
    value = parse_json(b"[NaN, Infinity, -Infinity]")
    assert value[1] == float("inf") and value[2] == float("-inf") and value[0] != value[0]


def test_json_object_requires_an_object():
    assert json_object(b'{"a": 1}') == {"a": 1}
    with pytest.raises(InvalidInput, match="must be a JSON object"):
        json_object(b"[1]")
