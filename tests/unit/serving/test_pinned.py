"""PinnedVersions in process (WSGI, werkzeug's test client): which requests are pinned, the
errors for a version nobody serves, conflicting names, a candidate that is down or hangs, and
that forwarded requests never reach the app (so they are not this version's answers)."""

from __future__ import annotations

import json
import socket
from types import SimpleNamespace

import pytest
from prometheus_client import CollectorRegistry
from test_shadow import RawServer, _hang
from werkzeug.test import Client

from modelops import contract as c
from modelops.serving.pinned import PinnedVersions
from modelops.serving.shadow_diff import ShadowTarget

BODY = json.dumps({"instances": [[1.0, 2.0, 3.0, 4.0]]})


def app_answering(calls: list):
    def app(environ, start_response):
        calls.append(environ["PATH_INFO"])
        start_response("200 OK", [("Content-Type", "application/json")])
        return [b'{"predictions": [0]}']
    return app


def pinned(target: ShadowTarget | None, calls: list, timeout: float = 5.0) -> Client:
    shadow = SimpleNamespace(annotations=SimpleNamespace(target=target))
    return Client(PinnedVersions(app_answering(calls), name="iris", version="1", shadow=shadow,
                                 max_body_bytes=1 << 20, registry=CollectorRegistry(),
                                 timeout=timeout))


def closed_port_url() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{s.getsockname()[1]}"


@pytest.mark.parametrize(("path", "header", "reaches_app"), [
    ("/v1/models/iris:predict", None, True),
    ("/v1/models/iris:predict", "1", True),
    ("/v2/models/iris/infer", "1", True),
    ("/v2/models/iris/versions/1/infer", None, True),
    ("/v2/models/iris/versions/1/infer", "1", True),
])
def test_requests_for_this_version_reach_the_app_and_say_who_answered(path, header, reaches_app):
    calls: list = []
    headers = {c.HEADER_VERSION: header} if header else {}
    reply = pinned(None, calls).post(path, data=BODY, headers=headers,
                                     content_type="application/json")
    assert reply.status_code == 200 and calls == [path]
    assert reply.headers[c.HEADER_VERSION] == "1"


def test_other_routes_are_left_alone():
    calls: list = []
    reply = pinned(None, calls).get("/v2/models/iris", headers={c.HEADER_VERSION: "7"})
    assert reply.status_code == 200 and calls == ["/v2/models/iris"]
    assert c.HEADER_VERSION not in reply.headers


@pytest.mark.parametrize(("target", "expected"), [
    (None, "model 'iris' has no version '7' here; this Service reaches version 1"),
    (ShadowTarget("http://127.0.0.1:1", "2", 10.0, 0.0),
     "model 'iris' has no version '7' here; this Service reaches version 1, 2 (in shadow)"),
])
def test_a_version_nobody_serves_is_a_404_naming_what_is_reachable(target, expected):
    calls: list = []
    for path, headers in (("/v2/models/iris/versions/7/infer", {}),
                          ("/v1/models/iris:predict", {c.HEADER_VERSION: "7"})):
        reply = pinned(target, calls).post(path, data=BODY, headers=headers,
                                           content_type="application/json")
        assert (reply.status_code, reply.json) == (404, {"error": expected})
    assert calls == []


def test_path_and_header_naming_different_versions_is_a_400():
    calls: list = []
    reply = pinned(None, calls).post("/v2/models/iris/versions/1/infer", data=BODY,
                                     headers={c.HEADER_VERSION: "2"})
    assert reply.status_code == 400 and "name one" in reply.json["error"] and calls == []


def test_a_candidate_that_is_down_is_a_502_and_one_that_hangs_a_504():
    calls: list = []
    down = ShadowTarget(closed_port_url(), "2", 10.0, 0.0)
    reply = pinned(down, calls).post("/v1/models/iris:predict", data=BODY,
                                     headers={c.HEADER_VERSION: "2"})
    assert reply.status_code == 502
    assert reply.json == {"error": "version 2 (in shadow) is unreachable: ConnectionRefusedError"}
    hanging = RawServer(_hang)
    try:
        reply = pinned(ShadowTarget(hanging.url, "2", 10.0, 0.0), calls, timeout=0.5).post(
            "/v2/models/iris/versions/2/infer", data=BODY)
    finally:
        hanging.close()
    assert reply.status_code == 504
    assert reply.json == {"error": "version 2 (in shadow) did not answer within 0.5 s"}
    assert calls == []  # neither reached this version's app: not its answers, not its errors


def test_a_shadow_copy_is_never_forwarded():
    calls: list = []
    target = ShadowTarget(closed_port_url(), "2", 10.0, 0.0)
    reply = pinned(target, calls).post("/v1/models/iris:predict", data=BODY,
                                       headers={c.HEADER_SHADOW: "1", c.HEADER_VERSION: "2"})
    assert reply.status_code == 200 and calls == ["/v1/models/iris:predict"]
