"""Read a request body within a size limit and parse it as JSON.

The limit holds however the body arrives: with a Content-Length (refused before reading when it
is too big), chunked with no length (read at most limit+1 bytes), or compressed with
Content-Encoding gzip/deflate (decompressed incrementally, stopping at the limit, so a small
"zip bomb" cannot blow up memory). Errors are 4xx ServingErrors that say what was wrong. Reads
the WSGI input stream; otherwise pure.
"""

from __future__ import annotations

import json
import zlib
from collections.abc import Iterator, Mapping

import orjson

from modelops.serving.errors import InvalidInput, PayloadTooLarge, UnsupportedMediaType

_READ_CHUNK = 64 * 1024
# zlib window bits: 16+MAX_WBITS accepts gzip only; 32+MAX_WBITS auto-detects zlib or gzip.
_WBITS = {"gzip": 16 + zlib.MAX_WBITS, "x-gzip": 16 + zlib.MAX_WBITS, "deflate": 32 + zlib.MAX_WBITS}


def read_body(environ: Mapping, max_bytes: int) -> bytes:
    """The request body, decompressed, at most `max_bytes`; 413/415/400 otherwise."""
    encoding = environ.get("HTTP_CONTENT_ENCODING", "identity").strip().lower()
    if encoding not in ("identity", "", *_WBITS):
        raise UnsupportedMediaType(
            f"Content-Encoding {encoding!r} is not supported; use gzip, deflate or none"
        )
    compressed = encoding in _WBITS
    raw_limit = _compressed_limit(max_bytes) if compressed else max_bytes
    declared = _content_length(environ)
    if declared is not None and declared > raw_limit:
        raise PayloadTooLarge(f"request body is {declared} bytes; the limit is {max_bytes}")
    chunks = _chunks(environ["wsgi.input"], declared, raw_limit, "compressed " if compressed else "")
    if compressed:
        return _inflate(chunks, _WBITS[encoding], encoding, max_bytes)
    return b"".join(chunks)


def _content_length(environ: Mapping) -> int | None:
    raw = environ.get("CONTENT_LENGTH") or ""
    if not raw:
        return None
    if not raw.isdigit():
        raise InvalidInput(f"Content-Length {raw!r} is not a number")
    return int(raw)


def _chunks(stream, declared: int | None, limit: int, what: str) -> Iterator[bytes]:
    """The raw body: exactly Content-Length bytes (never read past it, PEP 3333), or, when
    there is none (chunked), everything up to EOF as long as it stays within `limit`."""
    wanted = declared if declared is not None else limit + 1
    size = 0
    while size < wanted:
        chunk = stream.read(min(_READ_CHUNK, wanted - size))
        if not chunk:
            break
        size += len(chunk)
        if size > limit:
            raise PayloadTooLarge(f"{what}request body is larger than the limit of {limit} bytes")
        yield chunk
    if declared is not None and size < declared:
        raise InvalidInput(f"request body ended after {size} of {declared} bytes")


def _compressed_limit(max_bytes: int) -> int:
    # Compressed data is at most slightly larger than its output (stored blocks); anything
    # beyond that is padding such as endless empty blocks, refused like an oversized body.
    return max_bytes + max_bytes // 64 + 1024


def _inflate(chunks: Iterator[bytes], wbits: int, encoding: str, max_bytes: int) -> bytes:
    inflater = zlib.decompressobj(wbits)
    parts, size = [], 0
    try:
        for chunk in chunks:
            data = chunk
            while data and not inflater.eof:
                out = inflater.decompress(data, max_bytes + 1 - size)
                parts.append(out)
                size += len(out)
                if size > max_bytes:
                    raise PayloadTooLarge(
                        f"decompressed request body is larger than the limit of {max_bytes} bytes"
                    )
                data = inflater.unconsumed_tail
        parts.append(inflater.flush())
    except zlib.error as error:
        raise InvalidInput(f"request body is not valid {encoding} data: {error}") from None
    if not inflater.eof:
        raise InvalidInput(f"request body is truncated {encoding} data")
    body = b"".join(parts)
    if len(body) > max_bytes:
        raise PayloadTooLarge(f"decompressed request body is larger than the limit of {max_bytes} bytes")
    return body


def _keep_constant(name: str) -> float:
    # NaN/Infinity literals become floats so the tensor checks can name where they are.
    return float(name.replace("Infinity", "inf"))


def parse_json(body: bytes) -> object:
    """Parse a JSON body; InvalidInput naming the problem (empty, not UTF-8, syntax, depth)."""
    if not body.strip():
        raise InvalidInput("request body is empty; expected a JSON object")
    try:
        return orjson.loads(body)  # about half the memory of json.loads, and faster
    except orjson.JSONDecodeError:
        pass  # NaN/Infinity literals, integers beyond 64 bits, errors: the stdlib decides
    try:
        return json.loads(body, parse_constant=_keep_constant)
    except RecursionError:
        raise InvalidInput("malformed JSON: nested too deeply") from None
    except UnicodeDecodeError:
        raise InvalidInput("malformed JSON: the body is not UTF-8 text") from None
    except ValueError as error:
        raise InvalidInput(f"malformed JSON: {error}") from None


def json_object(body: bytes) -> dict:
    """parse_json, requiring a top-level object."""
    value = parse_json(body)
    if not isinstance(value, dict):
        raise InvalidInput("request body must be a JSON object")
    return value
