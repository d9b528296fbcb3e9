"""What Argo CD, kstatus (Flux) and kubectl show for the statuses the real operator writes.

The operator runs as its own process against the real control plane. Each test walks a Model or
a ModelPipeline through its states; at each state the live object, as the API server returns
it, goes through Argo CD's own health code (with deploy/argocd/argocd-cm.yaml) and through
cli-utils' kstatus (tools/build-gitops.sh builds both), which must give the health that
tests/unit/ecosystem/states.py expects. The captured object is also compared with the testdata
file of the same state under deploy/argocd, so the fixtures cannot drift from what the operator
really writes; `MODELOPS_CAPTURE_ARGOCD_TESTDATA=1` rewrites them from this run instead.

Serving pods have no kubelet here: their status is patched ready at a loopback address where a
small exporter answers the operator's scrapes on the serving port with request counters that a
background thread advances (a steady 20 requests/s per version, some of them 500s when a test
says so).
"""

from __future__ import annotations

import json
import os
import random
import re
import threading
from pathlib import Path
from wsgiref.simple_server import WSGIRequestHandler, make_server

import pytest
import yaml
from prometheus_client import CollectorRegistry, Counter, make_wsgi_app
from prometheus_client.exposition import ThreadingWSGIServer

from modelops import contract
from modelops.operator.spec import parse_model
from tests.cluster.support import Cluster, wait_for
from tests.factories import SHA_B, SHA_C, model_spec
from tests.unit.ecosystem import gitops_tools
from tests.unit.ecosystem.argocd import BUILD_TIMEOUT, CUSTOMIZATIONS, health
from tests.unit.ecosystem.states import EXPECTED

CAPTURE = os.environ.get("MODELOPS_CAPTURE_ARGOCD_TESTDATA") == "1"
POLICY = {"bakeWindow": "3s", "window": "4s", "interval": "1s", "consecutiveBreaches": 1,
          "minRequests": 5, "errorRateThreshold": 0.05}
QUIET = {"bakeWindow": "3s", "interval": "10m", "window": "10m", "onBakeTimeout": "Promote"}  # no traffic
TICK_SECONDS = 0.1
pytestmark = BUILD_TIMEOUT
REQUESTS_PER_TICK = 2


class _Quiet(WSGIRequestHandler):
    def log_message(self, *args):
        pass


class TrafficExporter:
    """Serving pods' /metrics at `ip`:8080: counters that grow by themselves, 500s on demand."""

    def __init__(self, ip: str):
        self.registry = CollectorRegistry()
        self.requests = Counter(contract.METRIC_REQUESTS, "Requests",
                                ["model", "version", "protocol", "code"], registry=self.registry)
        self.error_share: dict[tuple[str, str], float] = {}  # (model, version) -> 0..1
        self.server = make_server(ip, contract.DEFAULT_PORT, make_wsgi_app(self.registry),
                                  ThreadingWSGIServer, handler_class=_Quiet)
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self.server.serve_forever, args=(0.05,)),
                         threading.Thread(target=self._traffic)]
        for thread in self._threads:
            thread.start()

    def _traffic(self) -> None:
        while not self._stop.wait(TICK_SECONDS):
            for (model, version), share in list(self.error_share.items()):
                errors = round(REQUESTS_PER_TICK * share)
                self.requests.labels(model, version, "v2", "200").inc(REQUESTS_PER_TICK - errors)
                self.requests.labels(model, version, "v2", "500").inc(errors)

    def close(self) -> None:
        self._stop.set()
        self.server.shutdown()
        self.server.server_close()
        for thread in self._threads:
            thread.join(timeout=10)


@pytest.fixture(scope="module")
def exporter():
    ip = f"127.0.{random.randint(1, 250)}.{random.randint(2, 250)}"
    try:
        started = TrafficExporter(ip)
    except OSError as error:
        pytest.fail(f"cannot listen on {ip}:{contract.DEFAULT_PORT} for the fake pods: {error}")
    yield started
    started.close()


def _revision(**spec) -> str:
    return parse_model(model_spec(**spec)).revision


def _model(name: str, policy: dict, **spec) -> dict:
    return {"apiVersion": contract.API_GROUP_VERSION, "kind": contract.MODEL_KIND,
            "metadata": {"name": name}, "spec": model_spec(rollback=policy, **spec)}


def _conditions(obj: dict) -> set[tuple[str, str, str]]:
    return {(c["type"], c["status"], c.get("reason", ""))
            for c in (obj.get("status") or {}).get("conditions") or []}


def _shape(obj: dict) -> dict:
    """What must not drift between a fixture and a fresh capture: the status fields and the
    health conditions. The analysis and MetricsAvailable depend on when the operator's timer
    last ran, so they are left out."""
    status = obj.get("status") or {}
    return {"status fields": sorted(k for k, v in status.items()
                                    if v not in (None, [], {}) and k != "analysis"),
            "conditions": sorted(c for c in _conditions(obj) if c[0] != "MetricsAvailable")}


def check(obj: dict, state: str) -> dict:
    """Assert Argo CD's and kstatus' view of a live object; compare with (or write) its fixture."""
    kind = obj["kind"]
    obj = {**obj, "metadata": {k: v for k, v in obj["metadata"].items() if k != "managedFields"}}
    argocd, flux = EXPECTED[kind][state]
    [argocd_view] = health([obj])
    [flux_view] = gitops_tools.kstatus([obj])
    assert (argocd_view.status, flux_view.status) == (argocd, flux), \
        (state, argocd_view, flux_view, obj)
    fixture = CUSTOMIZATIONS / contract.API_GROUP / kind / "testdata" / f"{state}.yaml"
    if CAPTURE:
        fixture.write_text(yaml.safe_dump(obj, sort_keys=False, width=100))
        _record_case(fixture, argocd_view)
    else:
        assert _shape(obj) == _shape(yaml.safe_load(fixture.read_text())), \
            f"{fixture.relative_to(CUSTOMIZATIONS)} no longer matches what the operator writes"
    return obj


def _record_case(fixture: Path, health) -> None:
    """Capture mode: set this fixture's case in health_test.yaml to what the script says now."""
    path = fixture.parents[1] / "health_test.yaml"
    text = path.read_text()
    header = "".join(line for line in text.splitlines(keepends=True) if line.startswith("#"))
    tests = yaml.safe_load(text)["tests"]
    case = {"healthStatus": {"status": health.status, "message": health.message},
            "inputPath": f"testdata/{fixture.name}"}
    index = next((i for i, t in enumerate(tests) if t["inputPath"] == case["inputPath"]), None)
    if index is None:
        tests.append(case)
    else:
        tests[index] = case
    path.write_text(header + yaml.safe_dump({"tests": tests}, sort_keys=False, width=200))


def _has(cluster: Cluster, ns: str, name: str, wanted: set, plural=contract.MODEL_PLURAL):
    """The live object once its conditions include every (type, status, reason) in `wanted`."""
    obj = cluster.model(ns, name, plural)
    return obj if wanted <= _conditions(obj) else None


def _when(cluster, ns, name, *wanted, plural=contract.MODEL_PLURAL, timeout=60) -> dict:
    try:
        return wait_for(lambda: _has(cluster, ns, name, set(wanted), plural), timeout=timeout,
                        what=f"{name} to have {wanted}")
    except AssertionError as failure:
        status = cluster.model(ns, name, plural).get("status") or {}
        raise AssertionError(f"{failure}\nconditions: {sorted(_conditions({'status': status}))}"
                             f"\nanalysis: {status.get('analysis')}") from None


def _kubectl_get(control_plane, ns: str, name: str) -> dict[str, str]:
    """`kubectl get models <name>` as {column: value}; columns are left-aligned under headers."""
    header, row = control_plane.kubectl("get", "models", name, "-n", ns).stdout.splitlines()[:2]
    starts = [m.start() for m in re.finditer(r"\S+(?: \S+)*", header)]
    bounds = list(zip(starts, starts[1:] + [None]))
    return {header[a:b].strip(): row[a:b].strip() for a, b in bounds}


def test_rollout_states(cluster, control_plane, exporter, namespace):
    ns, name = namespace, "iris"
    exporter.error_share[(name, "1")] = 0.0
    check(cluster.create(ns, _model(name, POLICY)), "created")
    check(_when(cluster, ns, name, ("Ready", "False", "RollingOut")), "rolling-out-first")
    v1 = _revision(rollback=POLICY)
    wait_for(lambda: cluster.mark_pods_ready(ns, name, v1, exporter.server.server_address[0]) == 2,
             what="v1 pods")
    check(_when(cluster, ns, name, ("Ready", "True", "Baking")), "baking")
    check(_when(cluster, ns, name, ("Ready", "True", "Serving"),
                         ("MetricsAvailable", "True", "MetricsScraped")), "serving")

    columns = _kubectl_get(control_plane, ns, name)
    assert {k: columns[k] for k in ("READY", "SERVING", "DESIRED", "REASON")} == \
        {"READY": "True", "SERVING": "1", "DESIRED": "1", "REASON": "Serving"}
    control_plane.kubectl("wait", "--for=condition=Ready", f"model/{name}", "-n", ns,
                          "--timeout=30s")

    stale = cluster.patch_spec(ns, name, {"version": "2", "artifact": {"sha256": SHA_B}})
    check(stale, "stale-generation")  # the API's answer, before the operator looked
    check(_when(cluster, ns, name, ("Ready", "False", "RollingOut")), "rolling-out-second")
    v2 = _revision(version="2", sha256=SHA_B, rollback=POLICY)
    wait_for(lambda: v2 in cluster.deployments(ns, name), what="the v2 Deployment")
    message = "ChecksumMismatch: artifact sha256 does not match spec.artifact.sha256"
    wait_for(lambda: cluster.fail_pods(ns, name, v2, message) == 2, what="v2 pods")
    check(_when(cluster, ns, name, ("Stalled", "True", "ChecksumMismatch")),
          "stalled-checksum-mismatch")
    assert _kubectl_get(control_plane, ns, name)["SERVING"] == "1"

    cluster.patch_spec(ns, name, {"suspend": True})
    check(_when(cluster, ns, name, ("Ready", "False", "Suspended")), "suspended")


def test_analysis_states(cluster, control_plane, exporter, namespace):
    ns, ip = namespace, exporter.server.server_address[0]
    exporter.error_share[("churn", "1")] = 0.0
    exporter.error_share[("fresh", "1")] = 0.5
    cluster.create(ns, _model("churn", POLICY))
    cluster.create(ns, _model("fresh", {**POLICY, "bakeWindow": "10m"}))
    cluster.create(ns, _model("quiet", {**QUIET, "window": "4s", "interval": "1s"}))  # judged soon
    cluster.create(ns, _model("slow", {**QUIET, "progressDeadlineSeconds": 10}))  # never ready
    v1 = _revision(rollback=POLICY)
    for name, address in (("churn", ip), ("fresh", ip), ("quiet", "127.0.0.1")):
        wait_for(lambda: cluster.mark_pods_ready(ns, name, v1, address) == 2, what=name)
    check(_when(cluster, ns, "fresh", ("Degraded", "True", "NoPreviousVersion")),
          "no-previous-version")
    check(_when(cluster, ns, "quiet", ("Ready", "True", "Serving"),
                         ("MetricsAvailable", "False", "MetricsUnavailable")),
          "metrics-unavailable")

    _when(cluster, ns, "churn", ("Ready", "True", "Serving"))
    exporter.error_share[("churn", "1")] = 0.5
    check(_when(cluster, ns, "churn", ("Degraded", "True", "ErrorRateAboveThreshold")),
          "degraded-after-promotion")
    exporter.error_share[("churn", "1")] = 0.0
    wait_for(lambda: "Degraded" not in {c[0] for c in _conditions(cluster.model(ns, "churn"))},
             what="churn to recover once its errors stop")

    exporter.error_share[("churn", "3")] = 0.5
    cluster.patch_spec(ns, "churn", {"version": "3", "artifact": {"sha256": SHA_C},
                                     "rollback": {"bakeWindow": "10m"}})
    v3 = _revision(version="3", sha256=SHA_C, rollback={**POLICY, "bakeWindow": "10m"})
    wait_for(lambda: cluster.mark_pods_ready(ns, "churn", v3, ip) == 2, what="churn v3 pods")
    rolled_back = check(_when(cluster, ns, "churn", ("Stalled", "True", "RolledBack")),
                        "rolled-back")
    assert rolled_back["status"]["servingVersion"] == "1"
    assert rolled_back["spec"]["version"] == "3", "the operator never writes spec"
    check(_when(cluster, ns, "slow", ("Stalled", "True", "ProgressDeadlineExceeded")),
          "progress-deadline-exceeded")
    # the two Stalled Models stay where they are; the others move on as their windows roll
    settled = {"churn": "rolled-back", "slow": "progress-deadline-exceeded"}
    listed = _listed_health(control_plane, ns)
    assert {name: listed[name] for name in settled} == {
        name: EXPECTED[contract.MODEL_KIND][state] for name, state in settled.items()}


def _listed_health(control_plane, ns: str) -> dict[str, tuple[str, str]]:
    """`kubectl get models -o json`, as the API server lists them, through both real tools."""
    items = json.loads(control_plane.kubectl("get", "models", "-n", ns, "-o", "json").stdout)
    objects = items["items"]
    return {obj["metadata"]["name"]: (argo.status, flux.status) for obj, argo, flux in
            zip(objects, health(objects), gitops_tools.kstatus(objects))}


def _pipeline(name: str, **spec) -> dict:
    steps = [{"name": "price", "model": "house-price"},
             {"name": "diagnosis", "model": "diagnosis", "input": "features+previous"}]
    return {"apiVersion": contract.API_GROUP_VERSION, "kind": contract.PIPELINE_KIND,
            "metadata": {"name": name}, "spec": {"steps": steps, **spec}}


def test_pipeline_states(cluster, namespace):
    ns, plural = namespace, contract.PIPELINE_PLURAL
    check(cluster.create(ns, _pipeline("dx"), plural), "created")
    check(_when(cluster, ns, "dx", ("Stalled", "True", "StepModelMissing"),
                         plural=plural), "stalled-step-missing")
    for name in ("house-price", "diagnosis"):
        cluster.create(ns, _model(name, QUIET))
    check(_when(cluster, ns, "dx", ("Ready", "False", "StepNotReady"), plural=plural),
          "waiting-for-steps")
    for name in ("house-price", "diagnosis"):
        wait_for(lambda: cluster.mark_pods_ready(ns, name, _revision(rollback=QUIET)) == 2,
                 what=f"{name} pods")
    check(_when(cluster, ns, "dx", ("Ready", "False", "RouterNotReady"), plural=plural),
          "waiting-for-router")
    wait_for(lambda: cluster.mark_ready(ns, f"{contract.LABEL_PIPELINE}=dx") == 1,
             what="the router pod")
    check(_when(cluster, ns, "dx", ("Ready", "True", "AllStepsReady"), plural=plural),
          "ready")
    # suspend leaves the router as it is; another spec change would roll it (no kubelet here)
    stale = cluster.patch_spec(ns, "dx", {"suspend": True}, plural)
    check(stale, "stale-generation")
    suspended = wait_for(lambda: (obj := cluster.model(ns, "dx", plural))["status"].get(
        "observedGeneration") == obj["metadata"]["generation"] and obj, what="suspend observed")
    check(suspended, "suspended")


def test_kubectl_explains_the_rollback_policy(control_plane, crds):
    text = control_plane.kubectl("explain", "model.spec.rollback").stdout
    assert "When a new version is rolled back automatically" in text
    for field in ("errorRateThreshold", "bakeWindow", "consecutiveBreaches", "minRequests"):
        assert field in text
