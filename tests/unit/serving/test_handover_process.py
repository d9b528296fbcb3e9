"""Connections follow the Service, with real gunicorn servers on loopback (serving/handover.py).

Two servers stand for two revisions' pods, and a small TCP forwarder stands for the Service as
kube-proxy implements it: it picks the backend when a connection opens, so switching it moves
only new connections. A keep-alive client (requests.Session, one pooled connection) posts
continuously. After the switch, the old server keeps every request as long as it keeps the
connection (the control case, with the connection age limit off); once its labels file (the
downward API file the kubelet writes) says `modelops.io/role="standby"`, it answers
`Connection: close` and the client's next connection reaches the new server within seconds.
When the file never changes (a late kubelet), the connection age limit moves the client anyway.
"""

from __future__ import annotations

import os
import socket
import threading
import time
from pathlib import Path

import pytest
import requests
from test_process import V2_BODY, start

from modelops import contract

HANDOVER_BOUND_SECONDS = 5.0  # the server re-reads the file every second
CONTROL_SECONDS = 3.0
MAX_AGE_SECONDS = 1.0


class Forwarder:
    """A loopback 'Service': each new connection goes to the backend chosen at connect time."""

    def __init__(self, target: str):
        self.target = target
        self.accepted = 0
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.listener.getsockname()[1]}"
        self._stop = False
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self):
        self.listener.settimeout(0.1)
        while not self._stop:
            try:
                client, _ = self.listener.accept()
            except OSError:
                continue
            self.accepted += 1
            host, port = self.target.removeprefix("http://").split(":")
            backend = socket.create_connection((host, int(port)))
            for a, b in ((client, backend), (backend, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    @staticmethod
    def _pipe(source, sink):
        try:
            while chunk := source.recv(65536):
                sink.sendall(chunk)
        except OSError:
            pass
        finally:
            for s in (source, sink):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def close(self):
        self._stop = True
        self.listener.close()


def set_role(labels: Path, role: str | None) -> None:
    """Write the labels file the way the kubelet does: a new file swapped in atomically."""
    lines = ['app.kubernetes.io/name="modelops-serving"', 'modelops.io/model="iris"']
    if role:
        lines.append(f'{contract.LABEL_ROLE}="{role}"')
    fresh = labels.with_suffix(".tmp")
    fresh.write_text("\n".join(lines) + "\n")
    os.replace(fresh, labels)


def start_revisions(artifacts, tmp_path, max_age: str) -> dict:
    servers = {}
    for version in ("1", "2"):
        labels = tmp_path / f"labels-{version}"
        set_role(labels, None)
        env = artifacts.iris.env("iris", version, **{contract.ENV_POD_LABELS_FILE: str(labels),
                                                     contract.ENV_MAX_CONNECTION_AGE: max_age})
        servers[version] = (start(tmp_path, env, workers=1), labels)
    return servers


@pytest.fixture
def revisions(artifacts, tmp_path):
    servers = start_revisions(artifacts, tmp_path, max_age="0")
    yield servers
    for server, _ in servers.values():
        server.stop()


@pytest.fixture
def aged_revisions(artifacts, tmp_path):
    servers = start_revisions(artifacts, tmp_path, max_age=str(MAX_AGE_SECONDS))
    yield servers
    for server, _ in servers.values():
        server.stop()


def versions_answering(session, url, seconds, stop_at=None):
    """(version, time) of each answer over `seconds` (or until version `stop_at` answers)."""
    answers, deadline = [], time.monotonic() + seconds
    while time.monotonic() < deadline:
        reply = session.post(f"{url}/v2/models/iris/infer", json=V2_BODY, timeout=10)
        assert reply.status_code == 200, reply.text
        answers.append((reply.json()["model_version"], time.monotonic()))
        if answers[-1][0] == stop_at:
            break
    return answers


def test_a_pod_leaving_service_sends_its_keep_alive_clients_to_the_new_version(revisions):
    (old, old_labels), (new, _) = revisions["1"], revisions["2"]
    service = Forwarder(old.url)
    session = requests.Session()
    try:
        before = versions_answering(session, service.url, 1.0)
        assert {v for v, _ in before} == {"1"} and service.accepted == 1  # one kept connection

        service.target = new.url  # the Service selects the new revision
        control = versions_answering(session, service.url, CONTROL_SECONDS)
        assert {v for v, _ in control} == {"1"}, "without the role, the old pod keeps everyone"
        assert service.accepted == 1

        switched = time.monotonic()
        set_role(old_labels, contract.ROLE_STANDBY)  # the operator labelled it; kubelet wrote it
        after = versions_answering(session, service.url, HANDOVER_BOUND_SECONDS + 5, stop_at="2")
        took = after[-1][1] - switched
        print(f"\nhandover: first answer from the new version {took:.2f}s after the role "
              f"changed; {len(after) - 1} answers from the old one in between")
        assert after[-1][0] == "2" and took < HANDOVER_BOUND_SECONDS
        assert service.accepted == 2  # exactly one reconnection
        assert {v for v, _ in versions_answering(session, service.url, 1.0)} == {"2"}
    finally:
        session.close()
        service.close()


def test_a_pod_back_in_service_keeps_connections_again(revisions):
    old, labels = revisions["1"]
    set_role(labels, contract.ROLE_STANDBY)
    time.sleep(1.2)
    with requests.Session() as session:
        reply = session.post(f"{old.url}/v2/models/iris/infer", json=V2_BODY, timeout=10)
        assert reply.headers.get("Connection", "").lower() == "close"
        set_role(labels, contract.ROLE_SERVING)
        time.sleep(1.2)
        session.post(f"{old.url}/v2/models/iris/infer", json=V2_BODY, timeout=10)  # reconnects
        reply = session.post(f"{old.url}/v2/models/iris/infer", json=V2_BODY, timeout=10)
        assert reply.headers.get("Connection", "").lower() != "close"


def test_without_the_role_change_the_connection_age_limit_moves_clients_to_the_new_version(
        aged_revisions):
    (old, _), (new, _) = aged_revisions["1"], aged_revisions["2"]
    service = Forwarder(old.url)
    session = requests.Session()
    try:
        versions_answering(session, service.url, 0.2)
        service.target = new.url  # the Service moved on; the labels file never changes
        switched = time.monotonic()
        after = versions_answering(session, service.url, MAX_AGE_SECONDS + 5, stop_at="2")
        took = after[-1][1] - switched
        print(f"\nage limit {MAX_AGE_SECONDS} s: first answer from the new version {took:.2f}s "
              f"after the switch, with no role change")
        assert after[-1][0] == "2" and took <= MAX_AGE_SECONDS + 0.5
        settled = versions_answering(session, service.url, 2.5)
        assert {v for v, _ in settled} == {"2"}
        assert 3 <= service.accepted <= 8  # about one reconnection per second, not per request
    finally:
        session.close()
        service.close()
