"""A read gate for gthread workers: no thread is given to a request that has not arrived.

gunicorn's gthread worker hands a connection to a thread as soon as one byte is readable, and
that thread then blocks on the socket for as long as the client cares to trickle; `threads`
half-sent requests freeze a worker. The gate reads in the worker's main loop instead (a
non-blocking recv per readable event): a connection reaches a thread only once its request
headers are in, and its body too when the body is at most GATE_BODY_BYTES; a request not in by
READ_DEADLINE_SECONDS is closed. The bytes read are handed to the thread's HTTP parser. Larger
bodies are read by the thread as before (their first MiB is already in).
"""

from __future__ import annotations

import errno
import re
import selectors
import time
from functools import partial

from gunicorn.workers.gthread import TConn

READ_DEADLINE_SECONDS = 10.0
GATE_BODY_BYTES = 1 << 20
_HEADER_LIMIT = 64 << 10
_CONTENT_LENGTH = re.compile(rb"\r\ncontent-length:[ \t]*(\d{1,12})[ \t]*\r\n", re.IGNORECASE)
_CHUNKED = re.compile(rb"\r\ntransfer-encoding:[^\r\n]*chunked", re.IGNORECASE)


def request_complete(buffered: bytes) -> bool:
    """Whether `buffered` holds a request's headers and (small) body, or more than the gate holds."""
    end = buffered.find(b"\r\n\r\n")
    if end < 0:
        return len(buffered) > _HEADER_LIMIT
    head, body = b"\r\n" + buffered[:end + 2], len(buffered) - end - 4
    length = _CONTENT_LENGTH.search(head)
    if length is not None:
        return body >= min(int(length.group(1)), GATE_BODY_BYTES)
    if _CHUNKED.search(head):
        return buffered.endswith(b"0\r\n\r\n") or body >= GATE_BODY_BYTES
    return True


class GatedConn(TConn):
    """A TConn that carries the bytes the gate read, and gives them to its parser."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.gate_buffer = b""
        self.gate_deadline = 0.0
        self.gated = False

    def init(self) -> None:
        super().init()
        if self.gate_buffer and self.parser is not None:
            self.parser.unreader.unread(self.gate_buffer)
            self.gate_buffer = b""


class ReadGate:
    """Mixin for a gunicorn ThreadWorker (see DrainingThreadWorker)."""

    def accept(self, listener) -> None:
        try:
            client_sock, client_addr = listener.accept()
        except OSError as error:  # as gunicorn's own accept: a vanished client is no error
            if error.errno in (errno.EAGAIN, errno.ECONNABORTED, errno.EWOULDBLOCK):
                return
            raise
        self.nr_conns += 1
        self.enqueue_req(GatedConn(self.cfg, client_sock, client_addr, listener.getsockname()))

    def enqueue_req(self, conn) -> None:
        buffered = conn.parser is not None and conn.parser.unreader.buf.getvalue()
        if not isinstance(conn, GatedConn) or conn.gated or buffered:
            conn.gated = False  # the next request on this connection is gated again
            super().enqueue_req(conn)
            return
        conn.sock.setblocking(False)
        conn.gate_deadline = time.monotonic() + READ_DEADLINE_SECONDS
        self._gating().add(conn)
        self.poller.register(conn.sock, selectors.EVENT_READ, partial(self._gate_readable, conn))

    def _gating(self) -> set:
        if not hasattr(self, "_gate_conns"):
            self._gate_conns = set()
        return self._gate_conns

    def _gate_readable(self, conn, _sock) -> None:
        try:
            data = conn.sock.recv(65536)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if not data:
            self._gate_drop(conn)
            return
        conn.gate_buffer += data
        if request_complete(conn.gate_buffer):
            self._gate_release(conn)
            conn.data_ready = True
            conn.gated = True
            self.enqueue_req(conn)

    def _gate_release(self, conn) -> None:
        self._gating().discard(conn)
        try:
            self.poller.unregister(conn.sock)
        except (OSError, KeyError, ValueError):
            pass

    def _gate_drop(self, conn) -> None:
        self._gate_release(conn)
        self.nr_conns -= 1
        conn.close()

    def murder_pending(self) -> None:
        super().murder_pending()
        now = time.monotonic()
        for conn in [c for c in self._gating() if c.gate_deadline <= now]:
            self._gate_drop(conn)
