"""Fixtures for the real-Prometheus tier: loopback exporters with real prometheus_client
registries, and a `prometheus` process (Debian's package) scraping them every second.

Every process started here is stopped by its PID at the end; nothing listens beyond 127.0.0.1.
"""

import shutil
import subprocess
import threading
import time
from wsgiref.simple_server import WSGIRequestHandler, make_server

import pytest
import requests
import yaml
from prometheus_client import CollectorRegistry, Counter, make_wsgi_app
from prometheus_client.exposition import ThreadingWSGIServer

from modelops import contract
from tests.ports import free_port

READY_TIMEOUT = 60  # seconds for prometheus to start answering /-/ready (shared CPU)


class QuietHandler(WSGIRequestHandler):
    def log_message(self, *args):
        pass


class Exporter:
    """A serving pod stand-in: the request counter in a real registry, served on loopback."""

    def __init__(self):
        self.registry = CollectorRegistry()
        self.requests = Counter(contract.METRIC_REQUESTS, "Requests",
                                ["model", "version", "protocol", "code"], registry=self.registry)
        self.server = make_server("127.0.0.1", 0, make_wsgi_app(self.registry),
                                  ThreadingWSGIServer, handler_class=QuietHandler)
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True)
        self.thread.start()
        self.target = f"127.0.0.1:{self.server.server_port}"

    def close(self):
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)


class Prometheus:
    """A running `prometheus` process and its loopback URL."""

    def __init__(self, process: subprocess.Popen, url: str, log_path):
        self.process, self.url, self.log_path = process, url, log_path

    def log_tail(self, lines: int = 30) -> str:
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])


@pytest.fixture(scope="module")
def exporters():
    """Two exporters: namespace "demo" (the one under test) and "other" (must be filtered out)."""
    started = {"demo": Exporter(), "other": Exporter()}
    yield started
    for exporter in started.values():
        exporter.close()


def _wait_ready(process: subprocess.Popen, url: str) -> None:
    deadline = time.monotonic() + READY_TIMEOUT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"prometheus exited with status {process.returncode}")
        try:
            if requests.get(f"{url}/-/ready", timeout=1).status_code == 200:
                return
        except requests.RequestException:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"prometheus not ready within {READY_TIMEOUT}s")


@pytest.fixture(scope="module")
def prometheus(exporters, tmp_path_factory):
    binary = shutil.which("prometheus")
    if binary is None:
        pytest.skip("the prometheus binary is not installed (apt-get install -y prometheus)")
    work = tmp_path_factory.mktemp("prometheus")
    config = {
        "global": {"scrape_interval": "1s", "scrape_timeout": "900ms"},
        "scrape_configs": [{
            "job_name": "modelops-serving",
            "static_configs": [{"targets": [exporter.target], "labels": {"namespace": namespace}}
                               for namespace, exporter in exporters.items()],
        }],
    }
    (work / "prometheus.yml").write_text(yaml.safe_dump(config))
    url = f"http://127.0.0.1:{free_port()}"
    log_path = work / "prometheus.log"
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            [binary, f"--config.file={work / 'prometheus.yml'}",
             f"--storage.tsdb.path={work / 'data'}",
             f"--web.listen-address={url.removeprefix('http://')}"],
            stdout=log, stderr=subprocess.STDOUT, cwd=work,
        )
    server = Prometheus(process, url, log_path)
    try:
        _wait_ready(process, url)
    except RuntimeError as exc:
        _stop(process)
        pytest.fail(f"{exc}\n{server.log_tail()}")
    try:
        yield server
    finally:
        _stop(process)


def _stop(process: subprocess.Popen) -> None:
    """Stop the prometheus we started, by its PID: SIGTERM, then SIGKILL if it hangs."""
    process.terminate()
    try:
        process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=5)
