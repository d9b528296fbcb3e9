"""Fetch the /metrics pages of one revision's pods at once, inside one total deadline.

One thread multiplexes every pod's connection (`selectors`): connect, send a plain HTTP/1.0
GET, read until the pod closes. The deadline bounds the whole fetch, not each read, so a pod
that trickles one byte a second is cut off at the deadline like one that never answers; the
caller's other work (other Models' passes run on other workers) is never held longer. Redirects
are not followed (a 3xx is a failure), bodies are capped, and a failure's reason is our own
short sentence: nothing a pod sends is ever copied into it.
"""

from __future__ import annotations

import errno
import selectors
import socket
import time
from collections.abc import Mapping
from urllib.parse import urlsplit

MAX_BYTES = 16 * 1024 * 1024  # far above any real /metrics page; bounds memory


def fetch_all(urls: Mapping[str, str], deadline_seconds: float,
              max_bytes: int = MAX_BYTES) -> dict[str, bytes | str]:
    """Body (bytes) or failure reason (str) for every key of `urls` (http://host:port/path)."""
    deadline = time.monotonic() + deadline_seconds
    results: dict[str, bytes | str] = {}
    with selectors.DefaultSelector() as selector:
        for key, url in urls.items():
            started = _start(key, url)
            if isinstance(started, str):
                results[key] = started
            else:
                selector.register(started[0], selectors.EVENT_WRITE, started)
        while selector.get_map():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            for handle, events in selector.select(remaining):
                done = _step(selector, handle.data, events, max_bytes)
                if done is not None:
                    results[handle.data[1]] = done
                    selector.unregister(handle.fileobj)
                    handle.fileobj.close()
        for handle in list(selector.get_map().values()):
            results[handle.data[1]] = f"no complete answer within {deadline_seconds:g}s"
            selector.unregister(handle.fileobj)
            handle.fileobj.close()
    return results


def _start(key: str, url: str):
    parts = urlsplit(url)
    if parts.scheme != "http" or not parts.hostname:
        return "not an http:// URL"
    family = socket.AF_INET6 if ":" in parts.hostname else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setblocking(False)
    error = sock.connect_ex((parts.hostname, parts.port or 80))
    if error not in (0, errno.EINPROGRESS):
        sock.close()
        return "connection refused" if error == errno.ECONNREFUSED else "cannot connect"
    request = (f"GET {parts.path or '/'} HTTP/1.0\r\nHost: {parts.netloc}\r\n"
               "Accept: text/plain\r\nConnection: close\r\n\r\n").encode()
    return sock, key, {"out": request, "in": bytearray()}


def _step(selector, data, events, max_bytes: int) -> bytes | str | None:
    """Advance one connection; its result when finished, else None."""
    sock, _, state = data
    try:
        if events & selectors.EVENT_WRITE:
            error = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
            if error:
                return "connection refused" if error == errno.ECONNREFUSED else "cannot connect"
            sent = sock.send(state["out"])
            state["out"] = state["out"][sent:]
            if not state["out"]:
                selector.modify(sock, selectors.EVENT_READ, data)
            return None
        chunk = sock.recv(65536)
    except (BlockingIOError, InterruptedError):
        return None
    except OSError as error:
        return "connection reset" if error.errno == errno.ECONNRESET else "cannot connect"
    if chunk:
        state["in"].extend(chunk)
        return f"sent more than {max_bytes} bytes" if len(state["in"]) > max_bytes else None
    return _parse(bytes(state["in"]))


def _parse(raw: bytes) -> bytes | str:
    head, separator, body = raw.partition(b"\r\n\r\n")
    status_line = head.split(b"\r\n", 1)[0].split()
    if not separator or len(status_line) < 2 or not status_line[0].startswith(b"HTTP/"):
        return "no HTTP answer"
    code = status_line[1]
    if not code.isdigit():
        return "no HTTP answer"
    if code != b"200":
        return f"answered HTTP {int(code)}"  # 3xx included: redirects are never followed
    return body
