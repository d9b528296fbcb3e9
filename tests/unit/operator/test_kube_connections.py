"""kube.py against a loopback HTTP server standing in for the API server: the answers the
operator does not read (label and annotation patches, deletes, the Secret create) give their
connection back, so 20 writes share one kept-alive connection instead of leaving 20 taken."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import kubernetes
import pytest

from modelops.operator import kube


@pytest.fixture
def api_server(monkeypatch):
    connections = []

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def setup(self):
            super().setup()
            connections.append(self.client_address)

        def _answer(self):
            self.rfile.read(int(self.headers.get("Content-Length") or 0))
            body = json.dumps({"kind": "Pod", "metadata": {"name": "p"}}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        do_PATCH = do_DELETE = do_POST = _answer

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
    configuration = kubernetes.client.Configuration(host=f"http://127.0.0.1:{server.server_port}")
    client = kubernetes.client.ApiClient(configuration)
    monkeypatch.setattr(kube, "_clients", {"core": kubernetes.client.CoreV1Api(client),
                                           "apps": kubernetes.client.AppsV1Api(client)})
    yield connections
    server.shutdown()
    server.server_close()


def test_unread_answers_give_their_connection_back(api_server):
    for n in range(10):
        kube.annotate("Pod", f"p{n}", "ns", {"modelops.io/shadow-url": None})
        kube.label("Pod", f"p{n}", "ns", {"modelops.io/role": "standby"})
    assert kube.delete("Service", "s", "ns", uid="u")
    assert kube.create_secret_once({"metadata": {"name": "k"}}, "ns")
    assert len(api_server) == 1, api_server
