"""The ordinary orders users produce, on the real control plane with the operator as its own
process (issue 10's cluster proof): v3 while v2 breaches, scaling during the bake and after
promotion, replicas 0 and back, a config-only change that breaks, the same manual rollback
twice, and more than HISTORY_LIMIT history entries.

There is no kubelet: a `Kubelet` thread marks each revision's pods Ready at that revision's own
loopback address, where a fake exporter answers the operator's scrapes with request counters
that grow by themselves (20 requests/s, a share of them 500 when the test says so). One address
per revision, so two revisions of the same version (a config-only change) are told apart, as
their pods would be. A `Watch` thread samples the Model all along and checks what must hold at
every moment: spec is only what the test wrote, history entries never change once written,
nothing that served is ever Failed, and whatever a test forbids (Stalled, a reason) never shows.
"""

from __future__ import annotations

import copy
import random
import subprocess
import sys
import threading
import time
from wsgiref.simple_server import WSGIRequestHandler, make_server

import pytest
from prometheus_client import CollectorRegistry, Counter, make_wsgi_app
from prometheus_client.exposition import ThreadingWSGIServer

from modelops import contract
from modelops.operator.revisions import HISTORY_LIMIT
from modelops.operator.spec import parse_model
from tests.cluster.support import ROOT, Cluster, wait_for
from tests.factories import SHA_A, SHA_B, SHA_C, model_spec

NAME = "iris"
POLICY = {"window": "2s", "interval": "1s", "consecutiveBreaches": 2, "minRequests": 5,
          "errorRateThreshold": 0.05, "minJudgedWindows": 1, "bakeWindow": "3s",
          "progressDeadlineSeconds": 10}
SHAS = {"1": SHA_A, "2": SHA_B, "3": SHA_C, "4": "d" * 64}


class _Quiet(WSGIRequestHandler):
    def log_message(self, *args):
        pass


class Exporter:
    """One revision's pods' /metrics at `ip`:8080; `share` of its requests answer 500."""

    def __init__(self, ip: str, version: str, share: float):
        self.ip, self.version, self.share = ip, version, share
        registry = CollectorRegistry()
        self.requests = Counter(contract.METRIC_REQUESTS, "Requests",
                                ["model", "version", "protocol", "code"], registry=registry)
        self.server = make_server(ip, contract.DEFAULT_PORT, make_wsgi_app(registry),
                                  ThreadingWSGIServer, handler_class=_Quiet)
        self.stop = threading.Event()
        self.threads = [threading.Thread(target=self.server.serve_forever, args=(0.05,)),
                        threading.Thread(target=self._traffic)]
        for thread in self.threads:
            thread.start()

    def _traffic(self) -> None:
        while not self.stop.wait(0.1):
            errors = round(2 * self.share)
            self.requests.labels(NAME, self.version, "v2", "200").inc(2 - errors)
            self.requests.labels(NAME, self.version, "v2", "500").inc(errors)

    def close(self) -> None:
        self.stop.set()
        self.server.shutdown()
        self.server.server_close()
        for thread in self.threads:
            thread.join(timeout=10)


class Kubelet:
    """Marks every pod of the Model Ready at its revision's exporter, unless paused."""

    def __init__(self, cluster: Cluster, ns: str):
        self.cluster, self.ns = cluster, ns
        self.share: dict[str, float] = {}       # revision -> error share of its exporter
        self.exporters: dict[str, Exporter] = {}
        self.paused = threading.Event()
        self.stop = threading.Event()
        self.base = f"127.{random.randint(80, 120)}.{random.randint(1, 250)}"
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        deadline = time.monotonic() + 600  # bounded, whatever happens
        while not self.stop.wait(0.2) and time.monotonic() < deadline:
            if self.paused.is_set():
                continue
            try:
                pods = self.cluster.core.list_namespaced_pod(
                    self.ns, label_selector=f"{contract.LABEL_MODEL}={NAME}").items
                for pod in pods:
                    ready = any(c.type == "Ready" and c.status == "True"
                                for c in (pod.status.conditions or []))
                    if not ready and pod.metadata.deletion_timestamp is None:
                        self._ready(pod.metadata.labels[contract.LABEL_REVISION],
                                    pod.metadata.labels[contract.LABEL_VERSION])
            except Exception:  # a pod deleted under us, the namespace going: try again
                pass

    def _ready(self, revision: str, version: str) -> None:
        if revision not in self.exporters:
            ip = f"{self.base}.{len(self.exporters) + 2}"
            self.exporters[revision] = Exporter(ip, version, self.share.get(revision, 0.0))
        self.cluster.mark_pods_ready(self.ns, NAME, revision, self.exporters[revision].ip)

    def set_share(self, revision: str, share: float) -> None:
        self.share[revision] = share
        if revision in self.exporters:
            self.exporters[revision].share = share

    def close(self) -> None:
        self.stop.set()
        self.thread.join(timeout=10)
        for exporter in self.exporters.values():
            exporter.close()


class Watch:
    """Samples the Model every 0.2 s and records what must never happen."""

    def __init__(self, cluster: Cluster, ns: str, written: list[dict]):
        self.cluster, self.ns, self.written = cluster, ns, written
        self.forbidden: set[tuple[str, str]] = set()  # (condition type, reason) never True
        self.problems: list[str] = []
        self.seen: set[tuple[str, str, str]] = set()  # (type, status, reason) of conditions
        self.phases: set[tuple[str, str]] = set()     # (revision, phase)
        self.history: list[dict] = []
        self.longest = 0
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        deadline = time.monotonic() + 600
        while not self.stop.wait(0.2) and time.monotonic() < deadline:
            try:
                self.check(self.cluster.model(self.ns, NAME))
            except Exception as error:  # noqa: BLE001 - the Model not created yet
                if "Not Found" not in str(error):
                    self.problems.append(f"read failed: {error}")

    def check(self, obj: dict) -> None:
        if obj["spec"] not in self.written and not self._written_soon(obj["spec"]):
            self.problems.append(f"spec not written by the test: {obj['spec']}")
        status = obj.get("status") or {}
        for c in status.get("conditions") or []:
            self.seen.add((c["type"], c["status"], c["reason"]))
            if c["status"] == "True" and ((c["type"], c["reason"]) in self.forbidden
                                          or (c["type"], "*") in self.forbidden):
                self.problems.append(f"forbidden condition {c}")
        for rec in status.get("revisions") or []:
            self.phases.add((rec["revision"], rec["phase"]))
            if rec["phase"] == "Failed" and rec.get("servedAt"):
                self.problems.append(f"a revision that served is Failed: {rec}")
        self._append_only(status.get("history") or [])

    def _written_soon(self, spec: dict) -> bool:
        """The test may not have recorded the API's answer (with defaults) yet."""
        time.sleep(1)
        return spec in self.written

    def _append_only(self, now: list[dict]) -> None:
        """`now` continues the last sample: some old entries trimmed, new ones appended."""
        before = self.history
        self.longest = max(self.longest, len(now))
        if len(now) > HISTORY_LIMIT:
            self.problems.append(f"history has {len(now)} entries")
        if before and not any(now[:len(before) - k] == before[k:] for k in range(len(before))):
            self.problems.append(f"history rewritten:\n{before}\n->\n{now}")
        self.history = now

    def close(self) -> None:
        self.stop.set()
        self.thread.join(timeout=10)
        assert not self.problems, "\n".join(self.problems[:5])


class Sequence:
    """One Model in one namespace: apply, patch, annotate, and read back."""

    def __init__(self, cluster: Cluster, ns: str, kubeconfig):
        self.cluster, self.ns, self.kubeconfig = cluster, ns, kubeconfig
        self.written: list[dict] = []
        self.spec: dict | None = None
        self.kubelet = Kubelet(cluster, ns)
        self.watch = Watch(cluster, ns, self.written)

    def apply(self, version: str, share: float = 0.0, **changes) -> str:
        """Apply `version` (with spec `changes`); its revision's pods answer `share` 500s."""
        spec = copy.deepcopy(self.spec) if self.spec else model_spec(replicas=1)
        spec.update(version=version, artifact={
            "uri": f"configMap://iris-{version}/model.joblib", "sha256": SHAS[version]})
        for key, value in changes.items():
            spec[key] = {**spec.get(key, {}), **value} if key == "rollback" else value
        revision = parse_model(spec).revision
        self.kubelet.set_share(revision, share)
        self.write(spec)
        return revision

    def write(self, spec: dict) -> None:
        self.written.append(copy.deepcopy(spec))  # before: the watch may read it at once
        if self.spec is None:
            body = {"apiVersion": contract.API_GROUP_VERSION, "kind": contract.MODEL_KIND,
                    "metadata": {"name": NAME}, "spec": spec}
            answer = self.cluster.create(self.ns, body)
        else:
            answer = self.cluster.patch_spec(self.ns, NAME, spec)
        self.written.append(answer["spec"])  # as the API server stored it (defaults)
        self.spec = spec

    def scale(self, replicas: int) -> None:
        self.write({**self.spec, "replicas": replicas})

    def cli(self, *args: str) -> str:
        done = subprocess.run([sys.executable, "-m", "modelops.cli", "--kubeconfig",
                               str(self.kubeconfig), *args, NAME, "-n", self.ns],
                              cwd=ROOT, capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done.stdout + done.stderr
        return done.stdout

    def model(self) -> dict:
        return self.cluster.model(self.ns, NAME)

    def status(self) -> dict:
        return self.model().get("status") or {}

    def service(self) -> str | None:
        return self.cluster.service_revision(self.ns, NAME)

    def phase(self, revision: str) -> str | None:
        return {r["revision"]: r["phase"] for r in self.status().get("revisions") or []}.get(
            revision)

    def conditions(self) -> dict[str, tuple[str, str]]:
        return {c["type"]: (c["status"], c["reason"])
                for c in self.status().get("conditions") or []}

    def until(self, what: str, check, timeout: float = 40):
        try:
            return wait_for(check, timeout=timeout, interval=0.2, what=what)
        except AssertionError as failure:
            st = self.status()
            records = [(r["revision"], r["version"], r["phase"]) for r in st.get("revisions") or []]
            raise AssertionError(f"{failure}\nconditions: {self.conditions()}\nrevisions: "
                                 f"{records}\nanalysis: {st.get('analysis')}\nrollback: "
                                 f"{st.get('rollback')}") from None

    def serving(self, revision: str, timeout: float = 40) -> None:
        self.until(f"the Service on {revision}", lambda: self.service() == revision and
                   self.status().get("servingRevision") == revision, timeout)

    def promoted(self, revision: str, timeout: float = 40) -> None:
        """Serving, Promoted, and status.lastGoodRevision (the rollback target) says so."""
        self.serving(revision, timeout)
        self.until(f"{revision} promoted", lambda: self.phase(revision) == "Promoted" and
                   self.status().get("lastGoodRevision") == revision, timeout)

    def events(self) -> list[tuple[str, str]]:
        return self.cluster.events(self.ns, NAME, ours_only=True)

    def wait_for_events(self, *wanted: tuple[str, str] | str) -> list[tuple[str, str]]:
        return self.cluster.wait_for_events(self.ns, NAME, *wanted)

    def close(self) -> None:
        self.kubelet.close()
        self.watch.close()


@pytest.fixture
def seq(cluster, control_plane, namespace, operator):
    built = Sequence(cluster, namespace, control_plane.kubeconfig)
    started = time.monotonic()
    yield built
    built.close()
    print(f"wall time {time.monotonic() - started:.1f} s")
    assert "Traceback" not in operator.log(), operator.log()[-4000:]


def _history(seq: Sequence) -> list[tuple[str, str]]:
    return [(h["revision"], h["phase"]) for h in seq.status()["history"]]


def test_v3_while_v2_breaches_keeps_v1_as_target(seq):
    seq.watch.forbidden = {("Stalled", "ProgressDeadlineExceeded")}
    v1 = seq.apply("1", rollback=POLICY)
    seq.promoted(v1)
    v2 = seq.apply("2", share=0.5, rollback={"bakeWindow": "5m", "consecutiveBreaches": 4})
    seq.serving(v2)
    seq.until("v2 breaching", lambda: (a := seq.status().get("analysis") or {}).get(
        "revision") == v2 and a.get("consecutiveBreaches", 0) >= 1)
    v3 = seq.apply("3", share=0.5)
    seq.serving(v3)
    st = seq.status()
    assert not st.get("rollback"), f"v2 was rolled back before v3 came: {st['rollback']}"
    records = {r["revision"]: r for r in st["revisions"]}
    assert records[v3]["predecessor"] == v1, "v1, not the breaching v2, is v3's target"
    assert seq.cluster.deployments(seq.ns, NAME)[v1].spec.replicas == 1, "v1 stays warm"
    assert records[v2]["phase"] == "Retired"

    record = seq.until("v3 rolled back", lambda: seq.status().get("rollback"), timeout=60)
    assert (record["fromRevision"], record["toRevision"]) == (v3, v1)
    assert (record["fromVersion"], record["toVersion"], record["reason"]) == (
        "3", "1", "ErrorRateAboveThreshold")
    seq.serving(v1)
    st = seq.status()
    assert st["servingVersion"] == "1" and st["lastGoodVersion"] == "1"
    assert seq.phase(v3) == "RolledBack" and seq.phase(v1) == "Promoted"
    assert seq.conditions()["Stalled"] == ("True", "RolledBack")
    assert seq.conditions()["Ready"] == ("False", "RolledBack")
    assert (v3, "RolledBack") in _history(seq) and (v1, "Promoted") in _history(seq)
    seq.wait_for_events(("Warning", "RolledBack"))
    assert seq.model()["spec"]["version"] == "3", "the operator never writes spec"


def test_scale_during_bake_and_after_promotion_is_never_a_failure(seq):
    seq.watch.forbidden = {("Stalled", "*"), ("Ready", "ProgressDeadlineExceeded"),
                           ("Degraded", "*")}
    v1 = seq.apply("1", rollback={**POLICY, "bakeWindow": "8s"})
    seq.serving(v1)
    seq.until("v1 baking", lambda: seq.conditions().get("Ready") == ("True", "Baking"))
    seq.kubelet.paused.set()
    seq.scale(2)
    seq.until("v1 unavailable while its pod comes", lambda: seq.conditions().get("Ready") == (
        "False", "PodsUnavailable") and seq.conditions().get("Reconciling") == (
        "True", "PodsUnavailable"))
    time.sleep(2)
    seq.kubelet.paused.clear()
    seq.until("two pods ready", lambda: seq.cluster.deployments(seq.ns, NAME)[v1].status
              .ready_replicas == 2)
    seq.promoted(v1)
    assert seq.conditions()["Ready"] == ("True", "Serving")

    seq.kubelet.paused.set()
    seq.scale(3)
    seq.until("v1 unavailable while its pod comes", lambda: seq.conditions().get("Ready") == (
        "False", "PodsUnavailable"))
    time.sleep(12)  # longer than progressDeadlineSeconds (10)
    assert seq.conditions()["Ready"] == ("False", "PodsUnavailable")
    assert seq.phase(v1) == "Promoted"
    seq.kubelet.paused.clear()
    seq.until("v1 serving on 3 pods", lambda: seq.conditions().get("Ready") == (
        "True", "Serving") and seq.cluster.deployments(seq.ns, NAME)[v1].status
        .ready_replicas == 3)
    assert {p for r, p in seq.watch.phases if r == v1} <= {"Starting", "Baking", "Promoted"}
    assert [p for r, p in _history(seq)] == ["Starting", "Baking", "Promoted"]
    events = seq.wait_for_events(("Normal", "Promoted"))
    assert not [e for e in events if e[0] == "Warning"], events
    assert seq.status()["servingVersion"] == "1"


def test_replicas_zero_and_back(seq):
    seq.watch.forbidden = {("Stalled", "*")}
    v1 = seq.apply("1", rollback=POLICY)
    seq.promoted(v1)
    seq.scale(0)
    seq.until("scaled to zero", lambda: seq.conditions().get("Ready") == ("True", "ScaledToZero"))
    seq.until("no pods", lambda: not seq.cluster.core.list_namespaced_pod(
        seq.ns, label_selector=f"{contract.LABEL_MODEL}={NAME}").items)
    assert seq.cluster.deployments(seq.ns, NAME)[v1].spec.replicas == 0
    assert "Reconciling" not in seq.conditions() and seq.service() == v1
    time.sleep(3)  # a few analysis intervals with no pods: nothing is judged, nothing fails
    assert seq.conditions()["Ready"] == ("True", "ScaledToZero") and seq.phase(v1) == "Promoted"
    seq.scale(1)
    seq.until("serving again", lambda: seq.conditions().get("Ready") == ("True", "Serving"))
    assert seq.service() == v1 and seq.status()["servingVersion"] == "1"
    assert ("Ready", "True", "ScaledToZero") in seq.watch.seen
    assert "Failed" not in {p for _, p in seq.watch.phases}
    assert [p for _, p in _history(seq)] == ["Starting", "Baking", "Promoted"]


def test_config_only_change_that_breaks_is_rolled_back(seq):
    seq.watch.forbidden = {("Stalled", "ProgressDeadlineExceeded")}
    v1 = seq.apply("1", rollback=POLICY, resources={"limits": {"memory": "512Mi"}})
    seq.promoted(v1)
    small = seq.apply("1", share=0.5, resources={"limits": {"memory": "64Mi"}},
                      rollback={"bakeWindow": "5m"})
    assert small != v1, "a resources change is a new revision"
    seq.serving(small)
    deployments = seq.cluster.deployments(seq.ns, NAME)
    limits = {rev: d.spec.template.spec.containers[0].resources.limits["memory"]
              for rev, d in deployments.items()}
    assert limits == {v1: "512Mi", small: "64Mi"}, "the warm one keeps its own config"
    assert seq.phase(small) == "Baking" and seq.conditions()["Ready"] == ("True", "Baking")
    record = seq.until("the config change rolled back", lambda: seq.status().get("rollback"))
    assert (record["fromRevision"], record["toRevision"]) == (small, v1)
    assert (record["fromVersion"], record["toVersion"]) == ("1", "1")
    seq.serving(v1)
    assert seq.phase(small) == "RolledBack" and seq.phase(v1) == "Promoted"
    assert seq.conditions()["Stalled"] == ("True", "RolledBack")
    # the Service moves first, the broken revision is scaled down on the following write
    seq.until("the rolled-back revision scaled to zero",
              lambda: seq.cluster.deployments(seq.ns, NAME)[small].spec.replicas == 0)
    assert (small, "RolledBack") in _history(seq)
    seq.wait_for_events(("Warning", "RolledBack"))
    # the same spec again (Argo CD re-syncing) does not retry it
    seq.write(copy.deepcopy(seq.spec))
    time.sleep(3)
    assert seq.service() == v1 and seq.phase(small) == "RolledBack"


def test_the_same_manual_rollback_twice(seq):
    v1 = seq.apply("1", rollback=POLICY)
    seq.promoted(v1)
    v2 = seq.apply("2")
    seq.promoted(v2)
    out = seq.cli("rollback", "--to", "1")
    seq.serving(v1)
    first = seq.status()["rollback"]
    assert first["reason"] == "ManualRollback" and first["requested"] in out
    assert (first["fromRevision"], first["toRevision"]) == (v2, v1)
    assert seq.phase(v2) == "RolledBack" and seq.phase(v1) == "Promoted"
    assert seq.status()["servingVersion"] == "1"
    assert seq.conditions()["Stalled"] == ("True", "RolledBack")

    v3 = seq.apply("3")  # roll forward; the annotation still holds the first request
    seq.promoted(v3)
    assert seq.status()["rollback"]["requested"] == first["requested"]
    assert seq.phase(v1) == "Retired"
    out = seq.cli("rollback", "--to", "1")
    seq.serving(v1)
    second = seq.status()["rollback"]
    assert second["requested"] != first["requested"] and second["requested"] in out
    assert (second["fromRevision"], second["toRevision"], second["reason"]) == (
        v3, v1, "ManualRollback")
    assert seq.phase(v3) == "RolledBack" and seq.phase(v1) == "Promoted"
    assert seq.conditions()["Stalled"] == ("True", "RolledBack")
    assert seq.status()["servingVersion"] == "1"
    rolled = [e for e in seq.events() if e == ("Warning", "RolledBack")]
    assert len(rolled) >= 2 and ("Warning", "RollbackRequestIgnored") not in seq.events()
    assert len([h for h in _history(seq) if h == (v1, "Promoted")]) >= 3


def test_more_history_than_the_limit_keeps_working(seq):
    v1 = seq.apply("1", rollback=POLICY)
    seq.promoted(v1)
    v2 = seq.apply("2")
    seq.promoted(v2)
    revert = {v1: "1", v2: "2"}
    serving, before = v2, len(_history(seq))
    for _ in range(10):  # two entries each (one Retired, one Promoted): past the limit
        serving = v1 if serving == v2 else v2
        assert seq.apply(revert[serving]) == serving
        seq.promoted(serving)  # a revert to a promoted revision: no bake, the last good one
        assert seq.phase(serving) == "Promoted"
    assert before + 2 * 10 > HISTORY_LIMIT + 4
    assert len(seq.status()["history"]) == HISTORY_LIMIT, "trimmed to the newest entries"
    assert seq.watch.longest == HISTORY_LIMIT
    seq.wait_for_events(("Normal", "Promoted"))
    v3 = seq.apply("3", share=0.5, rollback={"bakeWindow": "5m"})
    seq.serving(v3)
    record = seq.until("v3 rolled back", lambda: (r := seq.status().get("rollback")) and
                       r.get("fromRevision") == v3 and r)
    assert record["toRevision"] == serving
    seq.serving(serving)
    st = seq.status()
    assert (st["lastGoodRevision"], st["servingVersion"]) == (serving, revert[serving])
    assert len(st["history"]) == HISTORY_LIMIT and st["history"][-1]["phase"] in (
        "Promoted", "RolledBack")
    assert {r["version"] for r in st["revisions"]} <= {"1", "2", "3"}
    assert seq.phase(v3) == "RolledBack" and seq.phase(serving) == "Promoted"
    assert seq.conditions()["Stalled"] == ("True", "RolledBack")
    v4 = seq.apply("4", rollback={"bakeWindow": "3s"})
    seq.promoted(v4)
    assert seq.conditions()["Ready"] == ("True", "Serving")
    assert len(seq.status()["history"]) == HISTORY_LIMIT
