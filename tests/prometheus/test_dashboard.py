"""Every query of the Grafana dashboard against a real Prometheus scraping real serving processes.

Five `python -m modelops.serving` processes (gunicorn) run on loopback: iris versions 1 and 2
(version 2 one-hot encodes its features, so a value it never saw makes the model itself
raise: a real 500; iris 1 mirrors its requests to it as to a candidate in shadow), a `risk` model, a `petal` regressor, and a pipeline router chaining
iris -> risk; iris 1 and petal get true labels back through real feedback tokens. A sixth process
exports the operator's own metrics (its real metric definitions) and records one rollback of
iris 2 -> 1. Prometheus scrapes all six every second while a bounded scenario sends traffic;
then every panel and annotation query runs through /api/v1/query with the dashboard variables
substituted, and the main panels are rendered to a PNG (copied to docs/dashboard.png when
MODELOPS_UPDATE_SCREENSHOT=1). Every process started here is stopped by its PID.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import joblib
import numpy as np
import pytest
import requests
import yaml
from sklearn.datasets import load_iris
from sklearn.linear_model import LinearRegression, LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder

from modelops import contract as c
from tests.prometheus.conftest import Prometheus, _stop, _wait_ready, free_port
from tests.unit.ecosystem import dashboard

pytestmark = pytest.mark.prometheus

VARIABLES = {"datasource": "prometheus", "__rate_interval": "10s", "__range": "5m",
             "__interval": "1s", "namespace": "demo", "model": ".*", "pipeline": ".*"}
PHASE_SECONDS = 10  # iris 1 alone, then iris 2 beside it, then iris 2 rolled back
SCREENSHOT = dashboard.ROOT / "docs" / "dashboard.png"
OPERATOR_METRICS = """
import sys
from prometheus_client import start_http_server
from modelops.operator import metrics
start_http_server(int(sys.argv[1]), addr="127.0.0.1")
metrics.record_status("demo", "iris", [{"type": "Ready", "status": "True"},
                                       {"type": "MetricsAvailable", "status": "True"}])
metrics.ERROR_RATE.labels("demo", "iris", "1").set(0.0)
for line in sys.stdin:
    if line.strip() == "rollback":
        metrics.ERROR_RATE.labels("demo", "iris", "2").set(0.3)
        metrics.ROLLBACKS.labels("demo", "iris", "2", "1").inc()
        metrics.record_status("demo", "iris", [{"type": "Ready", "status": "False"}])
"""


@dataclass
class Window:
    start: float
    end: float
    rollback: float


class Fleet:
    """The serving processes and the operator-metrics process, on loopback ports."""

    def __init__(self, work: Path):
        self.work, self.processes, self.urls = work, {}, {}

    def start(self, name: str, env: dict[str, str],
              command: Callable[[int], list[str]] | None = None) -> str:
        """Start `python -m modelops.serving` (or `command(port)`) listening on a free port."""
        port = free_port()
        argv = command(port) if command else [sys.executable, "-m", "modelops.serving"]
        if command is None:
            env = {c.ENV_HOST: "127.0.0.1", c.ENV_PORT: str(port), c.ENV_WORKERS: "1",
                   c.ENV_TERMINATION_LOG: str(self.work / f"{name}.termination"),
                   c.ENV_METRICS_DIR: str(self.work / f"{name}.metrics"), **env}
        env = {**{k: v for k, v in os.environ.items() if k != c.ENV_METRICS_DIR}, **env}
        with open(self.work / f"{name}.log", "wb") as log:
            self.processes[name] = subprocess.Popen(
                argv, env=env, cwd=dashboard.ROOT,
                stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.PIPE)
        self.urls[name] = f"http://127.0.0.1:{port}"
        return self.urls[name]

    def wait_ready(self, names: list[str], timeout: float = 90) -> None:
        deadline = time.monotonic() + timeout
        for name in names:
            while not self._ready(name):
                if time.monotonic() > deadline:
                    pytest.fail(f"{name} not ready in {timeout}s:\n{self.log(name)}")
                time.sleep(0.3)

    def _ready(self, name: str) -> bool:
        if self.processes[name].poll() is not None:
            pytest.fail(f"{name} exited with {self.processes[name].returncode}:\n{self.log(name)}")
        try:
            return requests.get(self.urls[name] + c.PATH_READY, timeout=1).status_code == 200
        except requests.RequestException:
            return False

    def log(self, name: str) -> str:
        return (self.work / f"{name}.log").read_text(errors="replace")[-3000:]

    def stop(self) -> None:
        for process in self.processes.values():
            _stop(process)


def _petal_data():
    """Petal width from the other three iris measurements: the `petal` regressor's data."""
    features = load_iris().data
    return features[:, :3], features[:, 3]


def _feedback(work: Path, name: str) -> dict[str, str]:
    """Feedback on: a key (as from the Model's Secret) and a directory for the seen-set."""
    return {c.ENV_FEEDBACK_KEY: "k" * 40, c.ENV_ARTIFACT_DIR: str(work / f"{name}.artifact")}


def _artifact(path: Path, estimator) -> dict[str, str]:
    joblib.dump(estimator, path)
    return {c.ENV_ARTIFACT_URI: f"file://{path}",
            c.ENV_ARTIFACT_SHA256: hashlib.sha256(path.read_bytes()).hexdigest()}


def start_fleet(work: Path) -> Fleet:
    features, species = load_iris(return_X_y=True)
    with_species = np.column_stack([features, species])
    fleet = Fleet(work)
    shadow = work / "iris-1.annotations"  # iris 1 mirrors its requests to iris 2
    iris = fleet.start("iris-1", {c.ENV_MODEL_NAME: "iris", c.ENV_MODEL_VERSION: "1",
                                  c.ENV_POD_ANNOTATIONS_FILE: str(shadow),
                                  **_feedback(work, "iris-1"), **_artifact(
        work / "iris-1.joblib", LogisticRegression(max_iter=1000).fit(features, species))})
    fleet.start("petal-1", {c.ENV_MODEL_NAME: "petal", c.ENV_MODEL_VERSION: "1",
                            **_feedback(work, "petal-1"), **_artifact(
        work / "petal-1.joblib", LinearRegression().fit(*_petal_data()))})
    strict = make_pipeline(OneHotEncoder(handle_unknown="error"), LogisticRegression(max_iter=1000))
    candidate = fleet.start("iris-2", {c.ENV_MODEL_NAME: "iris", c.ENV_MODEL_VERSION: "2", **_artifact(
        work / "iris-2.joblib", strict.fit(features, species))})
    shadow.write_text(f'{c.ANNOTATION_SHADOW_URL}="{candidate}"\n{c.ANNOTATION_SHADOW_VERSION}="2"\n')
    risk = fleet.start("risk-1", {c.ENV_MODEL_NAME: "risk", c.ENV_MODEL_VERSION: "1", **_artifact(
        work / "risk-1.joblib", LogisticRegression(max_iter=1000).fit(with_species, species == 2))})
    steps = [{"name": "species", "model": "iris", "url": iris},
             {"name": "risk", "model": "risk", "url": risk, "input": "features+previous"}]
    fleet.start("triage", {c.ENV_MODE: "pipeline", c.ENV_PIPELINE_NAME: "triage",
                           c.ENV_PIPELINE_STEPS: json.dumps(steps)})
    fleet.wait_ready(["iris-1", "iris-2", "risk-1", "triage", "petal-1"])
    fleet.start("operator", {}, lambda port: [sys.executable, "-c", OPERATOR_METRICS, str(port)])
    return fleet


def _prometheus_config(fleet: Fleet) -> dict:
    targets = {name: url.removeprefix("http://") for name, url in fleet.urls.items()}
    operator = targets.pop("operator")
    return {"global": {"scrape_interval": "1s", "scrape_timeout": "900ms"},
            "scrape_configs": [
                {"job_name": "modelops-serving", "static_configs": [
                    {"targets": list(targets.values()), "labels": {"namespace": "demo"}}]},
                # as the ServiceMonitor: honour the operator's own `namespace` label
                {"job_name": "modelops-operator", "honor_labels": True, "static_configs": [
                    {"targets": [operator]}]}]}


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    binary = shutil.which("prometheus")
    if binary is None:
        pytest.fail("the prometheus binary is not installed (apt-get install -y prometheus)")
    work = tmp_path_factory.mktemp("dashboard")
    fleet, process = start_fleet(work), None
    try:
        (work / "prometheus.yml").write_text(yaml.safe_dump(_prometheus_config(fleet)))
        url = f"http://127.0.0.1:{free_port()}"
        with open(work / "prometheus.log", "wb") as log:
            process = subprocess.Popen(
                [binary, f"--config.file={work / 'prometheus.yml'}",
                 f"--storage.tsdb.path={work / 'data'}",
                 f"--web.listen-address={url.removeprefix('http://')}"],
                stdout=log, stderr=subprocess.STDOUT, cwd=work)
        _wait_ready(process, url)
        yield fleet, Prometheus(process, url, work / "prometheus.log")
    finally:
        if process is not None:
            _stop(process)
        fleet.stop()


def _send(session: requests.Session, url: str, name: str, rows: list) -> None:
    session.post(f"{url}/v1/models/{name}:predict", json={"instances": rows}, timeout=5)


def _score(session: requests.Session, url: str, name: str, rows: list, truth: list) -> None:
    """Predict, then send the true labels with the feedback tokens of the answer."""
    answer = session.post(f"{url}/v1/models/{name}:predict", json={"instances": rows}, timeout=5)
    tokens = answer.json()["feedback_tokens"]
    scored = session.post(f"{url}/v1/models/{name}:feedback", timeout=5, json={"feedback": [
        {"token": token, "truth": label} for token, label in zip(tokens, truth)]})
    assert scored.status_code == 200, scored.text


def _traffic(fleet: Fleet, seconds: float, with_v2: bool) -> None:
    session, deadline, turn = requests.Session(), time.monotonic() + seconds, 0
    while time.monotonic() < deadline:
        turn += 1
        # one label in four is wrong: accuracy about 75 %
        _score(session, fleet.urls["iris-1"], "iris", [[5.1, 3.5, 1.4, 0.2]], [0 if turn % 4 else 1])
        _score(session, fleet.urls["petal-1"], "petal", [[5.1, 3.5, 1.4]], [0.2 + (turn % 2) * 0.5])
        _send(session, fleet.urls["triage"], "triage", [[6.3, 3.3, 6.0, 2.5]])
        if with_v2:  # two in three requests to version 2 carry a value it never saw: a model error
            width = -0.2 if turn % 3 else 0.2
            _send(session, fleet.urls["iris-2"], "iris", [[5.1, 3.5, 1.4, width]])
        time.sleep(0.05)


def _query(url: str, expr: str) -> dict:
    response = requests.get(f"{url}/api/v1/query", params={"query": expr}, timeout=10)
    body = response.json()
    assert response.status_code == 200 and body["status"] == "success", (expr, body)
    return body["data"]


def _query_range(url: str, expr: str, window: Window) -> list[dict]:
    response = requests.get(f"{url}/api/v1/query_range", timeout=10, params={
        "query": expr, "start": window.start, "end": window.end, "step": 1})
    assert response.status_code == 200, response.text
    return response.json()["data"]["result"]


@pytest.fixture(scope="module")
def scenario(stack):
    fleet, server = stack
    deadline = time.monotonic() + 60
    while _query(server.url, "count(up == 1) == 6")["result"] == []:
        down = _query(server.url, "up == 0")["result"]
        assert time.monotonic() < deadline, f"targets not scraped in 60s: {down}"
        time.sleep(0.5)
    start = time.time()
    _traffic(fleet, PHASE_SECONDS, with_v2=False)
    _traffic(fleet, PHASE_SECONDS, with_v2=True)
    fleet.processes["operator"].stdin.write(b"rollback\n")
    fleet.processes["operator"].stdin.flush()
    rollback = time.time()
    _traffic(fleet, PHASE_SECONDS, with_v2=False)
    time.sleep(3)  # the last scrapes
    return fleet, server, Window(start - 5, time.time(), rollback)


def expand(expr: str) -> str:
    return dashboard.expand(expr, VARIABLES)


def test_every_dashboard_query_runs_and_returns_data(scenario):
    _, server, _ = scenario
    empty = [where for where, expr in dashboard.queries(dashboard.load())
             if not _query(server.url, expand(expr))["result"]]
    assert not empty, f"queries with no data after the scenario: {empty}"


def test_request_rate_panels_see_every_version_and_step(scenario):
    _, server, _ = scenario
    panels = {p["id"]: p for p in dashboard.load()["panels"]}
    models = _query(server.url, expand(panels[2]["targets"][0]["expr"]))["result"]
    steps = _query(server.url, expand(panels[12]["targets"][0]["expr"]))["result"]
    assert {(r["metric"]["model"], r["metric"].get("version", "")) for r in models} >= \
        {("iris", "1"), ("iris", "2"), ("risk", "1"), ("triage", "")}
    assert {(r["metric"]["step"], r["metric"]["code"]) for r in steps} == \
        {("species", "200"), ("risk", "200")}


def test_error_rate_panel_shows_version_2_failing_and_the_rollback(scenario):
    _, server, window = scenario
    board = dashboard.load()
    panels = {p["id"]: p for p in board["panels"]}
    series = {(s["metric"]["model"], s["metric"].get("version", "")):
              [float(v) for _, v in s["values"] if v != "NaN"]
              for s in _query_range(server.url, expand(panels[3]["targets"][0]["expr"]), window)}
    assert max(series[("iris", "2")]) > 0.05 and max(series[("iris", "1")]) == 0
    annotation = next(a for a in board["annotations"]["list"] if a["name"] == "Rollbacks")
    marks = _query_range(server.url, expand(annotation["expr"]), window)
    first = min(float(t) for s in marks for t, _ in s["values"])
    assert window.rollback - 1 <= first <= window.rollback + 5


def test_quality_panels_show_the_accuracy_and_rmse_of_the_labels_sent(scenario):
    _, server, _ = scenario
    panels = {p["title"]: p for p in dashboard.load()["panels"]}

    def value(title: str, model: str) -> float:
        result = _query(server.url, expand(panels[title]["targets"][0]["expr"]))["result"]
        return float(next(r for r in result if r["metric"]["model"] == model)["value"][1])

    assert abs(value("Accuracy from feedback", "iris") - 0.75) < 0.1  # one label in four wrong
    predicted = LinearRegression().fit(*_petal_data()).predict([[5.1, 3.5, 1.4]])[0]
    expected = ((predicted - 0.2) ** 2 / 2 + (predicted - 0.7) ** 2 / 2) ** 0.5
    assert abs(value("RMSE from feedback", "petal") - expected) < 0.05


def test_screenshot_of_the_main_panels(scenario, tmp_path):
    _, server, window = scenario
    board = dashboard.load()
    shown = [p for p in board["panels"] if p["id"] in (2, 3, 4, 5, 11, 12)]
    data = []
    for panel in shown:
        target = panel["targets"][0]
        result = _query_range(server.url, expand(target["expr"]), window)
        data.append(dashboard.PanelData(panel["title"], panel["fieldConfig"]["defaults"]["unit"], {
            dashboard.legend(target["legendFormat"], s["metric"]):
                ([float(t) for t, _ in s["values"]], [float(v) for _, v in s["values"]])
            for s in result}))
        assert data[-1].series, f"panel {panel['title']} has nothing to draw"
    annotation = next(a for a in board["annotations"]["list"] if a["name"] == "Rollbacks")
    marks = {float(s["values"][0][0]): dashboard.legend(annotation["titleFormat"], s["metric"])
             for s in _query_range(server.url, expand(annotation["expr"]), window)}
    assert marks, "the rollback annotation found nothing to mark"
    out = dashboard.render(data, marks, tmp_path / "dashboard.png", board["title"])
    assert out.stat().st_size > 20_000
    if os.environ.get("MODELOPS_UPDATE_SCREENSHOT") == "1":
        SCREENSHOT.parent.mkdir(exist_ok=True)
        shutil.copyfile(out, SCREENSHOT)
