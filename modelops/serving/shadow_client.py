"""The shadow sender's HTTP client: one kept-alive connection, one deadline for every wait.

http.client, not requests (a model worker does not import requests, see the serving README).
No redirect is followed (a 3xx is the candidate's answer). Each answer comes back with the
`Modelops-Version` header it carried, so callers can tell the candidate's answers from anything
else at that address (a Service kube-proxy has not programmed yet leaks its packets to the
node's default route, where whatever listens may answer). A reused connection that the
candidate closed meanwhile (its keep-alive timeout) is retried once on a new one. The deadline
bounds the connect, the send (a socket timeout bounds a whole sendall) and each read of the
answer, which reads through _DeadlineReader: every recv waits at most until the deadline, so a
candidate that trickles its answer a byte at a time still ends at the deadline with a
TimeoutError. Network I/O only.
"""

from __future__ import annotations

import http.client
import io
import time
from typing import NamedTuple
from urllib.parse import urlsplit

from modelops import contract

MAX_ANSWER_BYTES = 64 * 1024 * 1024


class Answer(NamedTuple):
    status: int
    body: bytes
    version: str  # the answer's Modelops-Version header, "" without one


class CandidateClient:
    """One sender's kept-alive connection to the candidate; every wait ends at the deadline."""

    def __init__(self) -> None:
        self._connection: http.client.HTTPConnection | None = None
        self._url = ""

    def post(self, url: str, path: str, body: bytes, headers: dict,
             deadline: float) -> Answer:
        """The candidate's answer; TimeoutError, OSError or HTTPException."""
        for attempt in (1, 2):
            connection, reused = self._connect(url, deadline)
            try:
                connection.request("POST", path, body, headers)
                response = connection.getresponse()
                data = response.read(MAX_ANSWER_BYTES + 1)
            except (OSError, http.client.HTTPException) as error:
                self.close()
                retry = reused and attempt == 1 and isinstance(
                    error, (ConnectionError, http.client.RemoteDisconnected))
                if not retry or time.monotonic() >= deadline:
                    raise
                continue
            if len(data) > MAX_ANSWER_BYTES or response.will_close:
                self.close()
            if len(data) > MAX_ANSWER_BYTES:
                raise http.client.HTTPException(f"answer larger than {MAX_ANSWER_BYTES} bytes")
            return Answer(response.status, data, response.getheader(contract.HEADER_VERSION, ""))
        raise AssertionError("unreachable")  # the loop returns or raises

    def _connect(self, url: str, deadline: float) -> tuple[http.client.HTTPConnection, bool]:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError("deadline reached")
        if self._connection is not None and self._url != url:
            self.close()
        reused = self._connection is not None and self._connection.sock is not None
        if self._connection is None:
            parts = urlsplit(url)
            kind = _HTTPS if parts.scheme == "https" else _HTTP
            self._connection, self._url = kind(parts.hostname, parts.port, timeout=remaining), url
        connection = self._connection
        connection.timeout, connection.deadline = remaining, deadline
        if connection.sock is not None:
            connection.sock.settimeout(remaining)
        return connection, reused

    def close(self) -> None:
        if self._connection is not None:
            self._connection.close()
        self._connection = None


class _Deadline:
    """http.client connection whose responses read through _DeadlineReader."""

    deadline = 0.0

    def response_class(self, sock, *args, **kwargs):  # called by getresponse() as a factory
        return http.client.HTTPResponse(_DeadlineSocket(sock, self.deadline), *args, **kwargs)


class _HTTP(_Deadline, http.client.HTTPConnection):
    pass


class _HTTPS(_Deadline, http.client.HTTPSConnection):
    pass


class _DeadlineSocket:
    def __init__(self, sock, deadline: float) -> None:
        self._sock, self._deadline = sock, deadline

    def makefile(self, mode: str):
        return io.BufferedReader(_DeadlineReader(self._sock, self._deadline))


class _DeadlineReader(io.RawIOBase):
    """Socket reads that each wait at most until the deadline, so together they end by it."""

    def __init__(self, sock, deadline: float) -> None:
        self._sock, self._deadline = sock, deadline
        self._raw = sock.makefile("rb", buffering=0)  # holds the socket open, as http.client expects

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        remaining = self._deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError("deadline reached")
        self._sock.settimeout(remaining)
        return self._raw.readinto(buffer)

    def close(self) -> None:
        self._raw.close()
        super().close()
