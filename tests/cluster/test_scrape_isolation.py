"""Scrapes that cannot hurt, on the real control plane with real serving processes: five Models
whose pods' /metrics trickle one byte a second (the denial of service in review-security H5)
do not delay another Model's automatic rollback, and their status says why they are not judged
without quoting anything the pods sent."""

from __future__ import annotations

import socket
import threading
import time

import pytest

from modelops import contract
from tests.cluster.support import wait_for
from tests.cluster.test_rollback import Scenario, Traffic
from tests.factories import model_spec

SUBNET = "127.77.3"
TRICKLERS = 5
ROLLBACK_BOUND_SECONDS = 30  # 2 breaches of 1 s windows plus the first scrapes, with margin


class Trickler:
    """Listens on <ip>:8080 and answers /metrics one byte a second, forever (until close)."""

    def __init__(self, ip: str):
        self.stop = threading.Event()
        self.listener = socket.create_server((ip, contract.DEFAULT_PORT))
        self.listener.settimeout(0.1)
        self.accepted = 0
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self):
        while not self.stop.is_set():
            try:
                conn, _ = self.listener.accept()
            except OSError:
                continue
            self.accepted += 1
            threading.Thread(target=self._drip, args=(conn,), daemon=True).start()

    def _drip(self, conn):
        with conn:
            try:
                conn.sendall(b"HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n\r\n")
                while not self.stop.wait(1.0):
                    conn.sendall(b"#")
            except OSError:
                pass

    def close(self):
        self.stop.set()
        self.listener.close()


@pytest.fixture
def scenario(control_plane, crds, namespace, tmp_path):
    built = Scenario(control_plane, namespace, tmp_path, SUBNET)
    built.operator.start()
    yield built
    built.close()
    assert "Traceback" not in built.operator.log(), built.operator.log()[-4000:]


def metrics_message(cluster, namespace, name):
    status = cluster.model(namespace, name).get("status") or {}
    found = {c["type"]: c for c in status.get("conditions") or []}
    return (found.get("MetricsAvailable") or {}).get("message")


def test_trickling_metrics_of_other_models_do_not_delay_a_rollback(scenario):
    s, ns = scenario, scenario.namespace
    tricklers = []
    try:
        for i in range(TRICKLERS):
            ip = f"{SUBNET}.{100 + i}"
            tricklers.append(Trickler(ip))
            name = f"slow-{i}"
            s.cluster.create(ns, {"apiVersion": contract.API_GROUP_VERSION,
                                  "kind": contract.MODEL_KIND, "metadata": {"name": name},
                                  "spec": model_spec(replicas=1, rollback={
                                      "interval": "1s", "window": "10s", "bakeWindow": "5m"})})
            wait_for(lambda: s.cluster.mark_ready(
                ns, f"{contract.LABEL_MODEL}={name}", ip) == 1, what=f"{name} pod")
        wait_for(lambda: all(t.accepted >= 2 for t in tricklers), timeout=60,
                 what="every trickling pod scraped")

        s.apply("1", bake="3s")
        v1 = s.serve("1")
        with Traffic(s.cluster, ns, s.ips, bad_share=0.25) as traffic:
            wait_for(lambda: s.status().get("lastGoodVersion") == "1", timeout=60,
                     what="v1 promoted")
            s.apply("2", bake="5m")
            v2 = s.serve("2")
            wait_for(lambda: s.cluster.service_revision(ns, "iris") == v2, what="v2 serving")
            wait_for(lambda: s.status().get("rollback"), timeout=90, what="a rollback")
            took = time.monotonic() - traffic.first_error_at
            wait_for(lambda: s.cluster.service_revision(ns, "iris") == v1, what="Service on v1")
        print(f"\nfirst failing request -> rollback with {TRICKLERS} trickling Models: {took:.1f} s")
        assert took < ROLLBACK_BOUND_SECONDS
        assert all(t.accepted >= 5 for t in tricklers)  # they kept being scraped meanwhile
        message = wait_for(lambda: metrics_message(s.cluster, ns, "slow-0"), what="a reason")
        assert "no complete answer within 2s" in message and "#" not in message
    finally:
        for trickler in tricklers:
            trickler.close()
