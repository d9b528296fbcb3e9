"""The shadow forwarder in one process (serving/shadow.py, shadow_client.py), over real loopback
HTTP: the client's deadline against a candidate that hangs or trickles, its retry of a closed
keep-alive connection, no redirects; the bounded queue; the annotations file; and a serving app
whose copies reach a candidate app (werkzeug on loopback) and are compared and counted.
"""

from __future__ import annotations

import socket
import threading
import time
from pathlib import Path

import pytest
from serving_support import metric, shadow_rows, threshold_artifacts
from werkzeug.serving import make_server

from modelops import contract as c
from modelops.serving.shadow import AnnotationsFile, Copy, CopyQueue
from modelops.serving.shadow_client import CandidateClient
from modelops.serving.shadow_diff import ShadowTarget

DEADLINE = 0.3
BOUND = 2.0  # far above DEADLINE: what a deadline that was not enforced could never meet


class RawServer:
    """A loopback TCP server that runs `serve(connection)` for each connection it accepts."""

    def __init__(self, serve):
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.listener.getsockname()[1]}"
        self.connections = 0
        self._serve = serve
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                connection, _ = self.listener.accept()
            except OSError:
                return
            self.connections += 1
            threading.Thread(target=self._serve, args=(connection,), daemon=True).start()

    def close(self):
        self.listener.close()


def _read_request(connection: socket.socket) -> None:
    data = b""
    while b"\r\n\r\n" not in data:
        data += connection.recv(65536)
    head, _, body = data.partition(b"\r\n\r\n")
    length = int(next(line.split(b":")[1] for line in head.split(b"\r\n")
                      if line.lower().startswith(b"content-length")))
    while len(body) < length:
        body += connection.recv(65536)


def _answer_once_then_close(connection):
    """Answers one request as if keeping the connection, then drops it (a keep-alive timeout)."""
    _read_request(connection)
    connection.sendall(b"HTTP/1.1 200 OK\r\nModelops-Version: 2\r\nContent-Length: 2\r\n\r\nok")
    connection.close()


def _trickle(connection):
    _read_request(connection)
    try:
        for byte in b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n" + b"x" * 100:
            connection.sendall(bytes([byte]))
            time.sleep(0.05)
    except OSError:
        pass


def _hang(connection):
    time.sleep(30)


def _redirect(connection):
    _read_request(connection)
    connection.sendall(b"HTTP/1.1 302 Found\r\nLocation: http://127.0.0.1:1/\r\n"
                       b"Content-Length: 0\r\n\r\n")


def _post(client: CandidateClient, url: str, deadline: float = DEADLINE):
    return client.post(url, "/v2/models/iris/infer", b"{}", {"Content-Type": "application/json"},
                       time.monotonic() + deadline)


@pytest.mark.parametrize("serve", [_hang, _trickle], ids=["hangs", "trickles"])
def test_the_deadline_bounds_a_candidate_that_hangs_or_trickles(serve):
    server = RawServer(serve)
    started = time.monotonic()
    with pytest.raises(TimeoutError):
        _post(CandidateClient(), server.url)
    assert time.monotonic() - started < BOUND
    server.close()


def test_a_dropped_keep_alive_connection_is_retried_once():
    server = RawServer(_answer_once_then_close)
    client = CandidateClient()
    for _ in range(3):
        assert _post(client, server.url, deadline=10) == (200, b"ok", "2")
    assert server.connections == 3
    server.close()


def test_a_closed_port_is_an_os_error_and_a_redirect_is_an_answer():
    with socket.create_server(("127.0.0.1", 0)) as probe:
        closed = f"http://127.0.0.1:{probe.getsockname()[1]}"
    with pytest.raises(ConnectionRefusedError):
        _post(CandidateClient(), closed)
    server = RawServer(_redirect)
    assert _post(CandidateClient(), server.url) == (302, b"", "")
    server.close()


def _copy(body: bytes) -> Copy:
    target = ShadowTarget("http://c:80", "2", 100.0, 0.01)
    return Copy(target, "v2", "/", body, {}, ("predict", None), "classifier", 0.0)


def test_the_queue_is_bounded_by_count_and_by_bytes():
    by_count = CopyQueue(2)
    assert [by_count.put(_copy(b"x")) for _ in range(3)] == [True, True, False]
    assert by_count.get().body == b"x" and by_count.put(_copy(b"y"))
    by_bytes = CopyQueue(100, max_bytes=10)
    assert [by_bytes.put(_copy(b"12345")) for _ in range(3)] == [True, True, False]
    assert len(by_bytes) == 2


def test_the_annotations_file_is_re_read_at_most_once_a_second(tmp_path):
    path, now = tmp_path / "annotations", [0.0]
    annotations = AnnotationsFile(path, clock=lambda: now[0])
    assert annotations.refresh() is True and annotations.target is None  # no file: off
    path.write_text(f'{c.ANNOTATION_SHADOW_URL}="http://c:80"\n{c.ANNOTATION_SHADOW_VERSION}="2"\n')
    now[0] = 0.5
    assert annotations.refresh() is False and annotations.target is None
    now[0] = 1.0
    assert annotations.refresh() is True and annotations.target.url == "http://c:80"
    path.write_text(f'{c.ANNOTATION_SHADOW_URL}="http://c:80"\n')
    now[0] = 2.0
    assert annotations.refresh() is True and annotations.target is None
    assert c.ANNOTATION_SHADOW_VERSION in annotations.error


# --- a serving app with a candidate app on loopback ------------------------------------------
@pytest.fixture(scope="module")
def thresholds(tmp_path_factory):
    return threshold_artifacts(tmp_path_factory.mktemp("thresholds"), {"a": 0.0, "b": 0.3})


@pytest.fixture
def candidate(thresholds, make_app):
    server = make_server("127.0.0.1", 0, make_app(thresholds["b"], "first", "2"), threaded=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()


def _serving(make_app, artifact, annotations: Path, url: str, version: str = "2"):
    annotations.write_text(f'{c.ANNOTATION_SHADOW_URL}="{url}"\n'
                           f'{c.ANNOTATION_SHADOW_VERSION}="{version}"\n')
    return make_app(artifact, "first", "1", **{c.ENV_POD_ANNOTATIONS_FILE: str(annotations)})


def shadow_counts(client, candidate: str = "2", wanted: int = 0, timeout: float = 30.0) -> dict:
    """Outcomes, rows and disagreements so far, once `wanted` copies have an outcome."""
    deadline = time.monotonic() + timeout
    while True:
        text = client.get("/metrics").get_data(as_text=True)
        counts = {o: metric(text, c.METRIC_SHADOW_REQUESTS, candidate=candidate, outcome=o) or 0
                  for o in c.SHADOW_OUTCOMES}
        if sum(counts.values()) >= wanted or time.monotonic() > deadline:
            counts["rows"] = metric(text, c.METRIC_SHADOW_ROWS, candidate=candidate) or 0
            counts["disagreements"] = metric(text, c.METRIC_SHADOW_DISAGREEMENTS,
                                             candidate=candidate) or 0
            counts["percent"] = metric(text, c.METRIC_SHADOW_PERCENT, candidate=candidate)
            return counts
        time.sleep(0.05)


def test_copies_are_compared_row_by_row_over_v1_and_v2(thresholds, make_app, candidate, tmp_path):
    client = _serving(make_app, thresholds["a"], tmp_path / "annotations", candidate).test_client()
    rows = shadow_rows(10, 0.3, 0.0, 0.3)  # the candidate (threshold 0.3) differs on 3 of 10
    v2 = {"inputs": [{"name": "x", "shape": [10, 4], "datatype": "FP64",
                      "data": [v for row in rows for v in row]}]}
    for _ in range(3):
        assert client.post("/v1/models/first:predict", json={"instances": rows}).status_code == 200
        assert client.post("/v2/models/first/versions/1/infer", json=v2).status_code == 200
    counts = shadow_counts(client, wanted=6)
    assert counts["mirrored"] == 6 and counts["rows"] == 60 and counts["disagreements"] == 18
    assert counts["percent"] == 100.0
    copy = client.post("/v1/models/first:predict", json={"instances": rows},
                       headers={c.HEADER_SHADOW: "0"})  # a copy itself is never mirrored again
    assert copy.status_code == 200
    time.sleep(0.5)
    assert shadow_counts(client)["mirrored"] == 6


def test_a_candidate_that_refuses_is_an_error_and_a_bad_request_is_not_copied(
        thresholds, make_app, candidate, tmp_path):
    app = _serving(make_app, thresholds["a"], tmp_path / "annotations", candidate)
    client = app.test_client()
    app_other_name = make_app(thresholds["a"], "other", "1", **{
        c.ENV_POD_ANNOTATIONS_FILE: str(tmp_path / "annotations")})
    other = app_other_name.test_client()  # the candidate serves `first`: 404 to `other`
    assert other.post("/v1/models/other:predict", json={"instances": [[1, 1, 1, 1]]}).status_code == 200
    assert shadow_counts(other, wanted=1)["error"] == 1
    assert client.post("/v1/models/first:predict", json={"instances": [[1, 1]]}).status_code == 400
    time.sleep(0.3)
    assert sum(shadow_counts(client)[o] for o in c.SHADOW_OUTCOMES) == 0


def test_invalid_annotations_switch_shadow_off_and_say_so(thresholds, make_app, tmp_path):
    path = tmp_path / "annotations"
    path.write_text(f'{c.ANNOTATION_SHADOW_URL}="http://127.0.0.1:1"\n')  # no version
    client = make_app(thresholds["a"], "first", "1",
                      **{c.ENV_POD_ANNOTATIONS_FILE: str(path)}).test_client()
    assert client.post("/v1/models/first:predict", json={"instances": [[1, 1, 1, 1]]}).status_code == 200
    text = client.get("/metrics").get_data(as_text=True)
    assert metric(text, c.METRIC_SHADOW_INVALID, model="first", version="1") == 1
    assert metric(text, c.METRIC_SHADOW_REQUESTS) is None


@pytest.mark.parametrize(("percent", "low", "high"), [("0", 0, 0), ("50", 60, 140)])
def test_the_share_of_copies_follows_the_percent(thresholds, make_app, candidate, tmp_path,
                                                  percent, low, high):
    path = tmp_path / "annotations"
    path.write_text(f'{c.ANNOTATION_SHADOW_URL}="{candidate}"\n{c.ANNOTATION_SHADOW_VERSION}="2"\n'
                    f'{c.ANNOTATION_SHADOW_PERCENT}="{percent}"\n')
    client = make_app(thresholds["a"], "first", "1",
                      **{c.ENV_POD_ANNOTATIONS_FILE: str(path)}).test_client()
    for _ in range(200):
        client.post("/v1/models/first:predict", json={"instances": [[1, 1, 1, 1]]})
    time.sleep(0.5)
    counts = shadow_counts(client, wanted=low)
    assert low <= sum(counts[o] for o in c.SHADOW_OUTCOMES) <= high, counts  # 50 %: 5 sigma
    assert counts["percent"] == float(percent)


def test_a_copy_carries_the_users_request_id(thresholds, make_app, tmp_path):
    heads: list[bytes] = []

    def answer(connection):
        data = b""
        while b"\r\n\r\n" not in data:
            data += connection.recv(65536)
        heads.append(data.partition(b"\r\n\r\n")[0])
        body = b'{"predictions": [0]}'
        connection.sendall(b"HTTP/1.1 200 OK\r\nModelops-Version: 2\r\nContent-Length: %d\r\n\r\n%s"
                           % (len(body), body))
        connection.close()

    server = RawServer(answer)
    try:
        client = _serving(make_app, thresholds["a"], tmp_path / "annotations", server.url).test_client()
        reply = client.post("/v1/models/first:predict", json={"instances": [[1, 1, 1, 1]]},
                            headers={"X-Request-Id": "trace-42"})
        assert reply.status_code == 200
        assert sum(shadow_counts(client, wanted=1)[o] for o in c.SHADOW_OUTCOMES) == 1
    finally:
        server.close()
    assert len(heads) == 1 and b"\r\nX-Request-Id: trace-42" in heads[0], heads


def test_an_answer_that_does_not_name_the_candidate_counts_as_unreachable(thresholds, make_app,
                                                                          tmp_path):
    """A Service kube-proxy has not programmed yet: what answers there is not the candidate."""
    def answer(connection):
        data = b""
        while b"\r\n\r\n" not in data:
            data += connection.recv(65536)
        connection.sendall(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n")
        connection.close()

    server = RawServer(answer)
    try:
        client = _serving(make_app, thresholds["a"], tmp_path / "annotations",
                          server.url).test_client()
        reply = client.post("/v1/models/first:predict", json={"instances": [[1, 1, 1, 1]]})
        counts = shadow_counts(client, wanted=1)
    finally:
        server.close()
    assert reply.status_code == 200
    assert counts["unreachable"] == 1 and counts["error"] == 0, counts
