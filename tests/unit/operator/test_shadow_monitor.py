"""ShadowMonitor: the evidence of a shadow from the serving pods' real shadow metrics (the
serving image's own `ShadowMetrics`, exposed and parsed as the operator scrapes them): a
baseline after the settle time, the increase since, a tick between reads, restarts, pods that
cannot be read, and a new shadow that never sees an old one's copies; the same for a canary
step's answers (`CANARY_STEP`)."""

from __future__ import annotations

import pytest
from prometheus_client import CollectorRegistry, generate_latest

from modelops import contract
from modelops.operator.metrics_source import MetricsUnavailable, parse_samples
from modelops.operator.revisions import iso
from modelops.operator.shadow_monitor import CANARY_STEP, SETTLE_SECONDS, ShadowMonitor
from modelops.serving.metrics import ShadowMetrics
from modelops.serving.pinned import PinnedVersions

START = 1_000_000.0


class Pod:
    """One serving pod's shadow metrics, as its /metrics page shows them."""

    def __init__(self, name: str, ip: str, version: str = "1"):
        self.name, self.ip = name, ip
        self.registry = CollectorRegistry()
        self.metrics = ShadowMetrics(model="fraud", version=version, registry=self.registry)

    def copies(self, candidate="2", *, mirrored=0, rows=0, disagree=0, **outcomes):
        for _ in range(mirrored):
            self.metrics.outcome(candidate, "mirrored")
        if rows:
            self.metrics.compared(candidate, rows, disagree, 0.01)
        for outcome, count in outcomes.items():
            for _ in range(count):
                self.metrics.outcome(candidate, outcome)

    def summary(self, revision="r1", ready=True):
        return {"name": self.name, "revision": revision, "ip": self.ip, "ready": ready,
                "deleting": False, "owner": f"fraud-{revision}-abc"}


class FakeScrape:
    """ScrapeSource.samples over the pods' registries; a pod in `down` cannot be read."""

    def __init__(self, pods):
        self.by_url = {f"http://{p.ip}:{contract.DEFAULT_PORT}{contract.PATH_METRICS}": p
                       for p in pods}
        self.down: set[str] = set()
        self.calls = 0

    def samples(self, urls):
        self.calls += 1
        if not urls:
            raise MetricsUnavailable("no serving pods to scrape")
        scraped, failed = {}, {}
        for name, url in urls.items():
            pod = self.by_url[url]
            if pod.name in self.down:
                failed[name] = "connection refused"
            else:
                scraped[name] = parse_samples(generate_latest(pod.registry).decode())
        if not scraped:
            raise MetricsUnavailable("no serving pod could be scraped")
        return scraped, failed


def status(started=START, candidate="r2", phase="Shadowing", version="2"):
    return {"servingRevision": "r1", "servingVersion": "1", "servingSince": iso(START - 600),
            "revisions": [{"revision": "r1", "version": "1", "phase": "Promoted"},
                          {"revision": candidate, "version": version, "phase": phase,
                           "shadowStartedAt": iso(started)}]}


@pytest.fixture
def world():
    pods = [Pod("a", "10.0.0.1"), Pod("b", "10.0.0.2")]
    scrape = FakeScrape(pods)
    return pods, scrape, ShadowMonitor(scrape, tick=5.0)


def measure(monitor, pods, now, st=None):
    return monitor.measure(uid="u", name="fraud", status=st or status(), now=now,
                           pods=[p.summary() for p in pods])


def test_nothing_is_read_until_the_shadow_settled_and_the_first_read_is_the_baseline(world):
    pods, scrape, monitor = world
    pods[0].copies(mirrored=50, rows=50, disagree=5)  # sent while the wiring settled
    assert measure(monitor, pods, START + SETTLE_SECONDS - 1) == {}
    assert scrape.calls == 0
    first = measure(monitor, pods, START + SETTLE_SECONDS)["r2"]
    assert (first.rows, first.disagreements, first.sent) == (0, 0, 0)
    pods[0].copies(mirrored=30, rows=30, disagree=3)
    pods[1].copies(mirrored=20, rows=20, error=2, unreachable=1, shed=4)
    later = measure(monitor, pods, START + SETTLE_SECONDS + 5)["r2"]
    assert (later.rows, later.disagreements) == (50, 3)
    assert later.outcomes == {"mirrored": 50, "shed": 4, "error": 2, "unreachable": 1}
    assert later.sent == 53 and later.failed == 3 and later.unscraped == 0


def test_reads_at_most_once_a_tick_and_repeats_the_evidence_between(world):
    pods, scrape, monitor = world
    measure(monitor, pods, START + 10)
    pods[0].copies(mirrored=10, rows=10)
    assert measure(monitor, pods, START + 12)["r2"].rows == 0
    assert scrape.calls == 1
    assert measure(monitor, pods, START + 15)["r2"].rows == 10
    assert scrape.calls == 2


def test_a_restarted_pod_counts_from_zero_and_an_unreadable_one_is_counted_out(world):
    pods, scrape, monitor = world
    pods[0].copies(mirrored=40, rows=40)
    measure(monitor, pods, START + 10)
    restarted = Pod("a", "10.0.0.1")  # same pod name, counters from zero
    scrape.by_url[next(u for u, p in scrape.by_url.items() if p is pods[0])] = restarted
    restarted.copies(mirrored=7, rows=7, disagree=1)
    scrape.down.add("b")
    stats = measure(monitor, [restarted, pods[1]], START + 15)["r2"]
    assert (stats.rows, stats.disagreements, stats.unscraped) == (7, 1, 1)


def test_when_no_pod_can_be_read_the_evidence_so_far_stands(world):
    pods, scrape, monitor = world
    measure(monitor, pods, START + 10)
    pods[0].copies(mirrored=25, rows=25)
    assert measure(monitor, pods, START + 15)["r2"].rows == 25
    scrape.down.update({"a", "b"})
    assert measure(monitor, pods, START + 20)["r2"].rows == 25


def test_only_the_serving_revisions_own_ready_pods_are_read(world):
    pods, scrape, monitor = world
    pods[1].copies(mirrored=99, rows=99)
    summaries = [pods[0].summary(), pods[1].summary(ready=False),
                 {**Pod("x", "10.0.0.9").summary(), "owner": "someone-else-1"}]
    monitor.measure(uid="u", name="fraud", status=status(), pods=summaries, now=START + 10)
    pods[0].copies(mirrored=3, rows=3)
    stats = monitor.measure(uid="u", name="fraud", status=status(), pods=summaries,
                            now=START + 15)["r2"]
    assert stats.rows == 3


def test_a_new_shadow_of_the_same_version_never_sees_the_old_ones_copies(world):
    pods, _, monitor = world
    measure(monitor, pods, START + 10)
    pods[0].copies(mirrored=60, rows=60, disagree=30)
    assert measure(monitor, pods, START + 15)["r2"].disagreements == 30
    again = status(started=START + 100)  # retried: a new shadowStartedAt
    assert measure(monitor, pods, START + 110, again)["r2"].rows == 0
    pods[0].copies(mirrored=5, rows=5)
    assert measure(monitor, pods, START + 115, again)["r2"].rows == 5


def test_copies_to_another_candidate_do_not_count(world):
    pods, _, monitor = world
    measure(monitor, pods, START + 10)
    pods[0].copies("3", mirrored=10, rows=10, disagree=10)
    assert measure(monitor, pods, START + 15)["r2"].rows == 0


@pytest.mark.parametrize("st", [
    status(phase="Baking"),
    {**status(), "servingRevision": None},
    {"revisions": []},
])
def test_no_candidate_in_shadow_is_no_evidence_and_no_scrape(world, st):
    pods, scrape, monitor = world
    assert measure(monitor, pods, START + 10, st) == {}
    assert scrape.calls == 0


def test_a_canary_step_counts_the_answers_since_it_started_and_a_new_step_starts_afresh(world):
    pods, scrape, _ = world
    monitor = ShadowMonitor(scrape, tick=5.0, evidence=CANARY_STEP)
    forwarders = [PinnedVersions(None, name="fraud", version="1", shadow=None,
                                 max_body_bytes=1024, registry=p.registry) for p in pods]

    def answered(pod: int, code: str, n: int):
        for _ in range(n):
            forwarders[pod]._requests.labels("fraud", "1", "2", "canary", code).inc()

    def step(index: int, started: float) -> dict:
        st = status(phase="Canary")
        st["revisions"][1].update(canaryStep=index, canaryStepStartedAt=iso(started))
        return st

    answered(0, "200", 30)  # before the canary's first read: the baseline
    assert measure(monitor, pods, START + SETTLE_SECONDS, step(0, START))["r2"].requests == 0
    answered(0, "200", 8)
    answered(1, "500", 2)
    got = measure(monitor, pods, START + SETTLE_SECONDS + 5, step(0, START))["r2"]
    assert got.codes == {"200": 8, "500": 2}
    later = START + 60
    assert measure(monitor, pods, later + SETTLE_SECONDS, step(1, later))["r2"].requests == 0
    answered(1, "200", 4)
    assert measure(monitor, pods, later + SETTLE_SECONDS + 5, step(1, later))["r2"].codes == {
        "200": 4}
    assert measure(monitor, pods, later + 99, status()) == {}  # no longer in canary


def test_a_canary_step_counts_the_candidates_errors_from_its_first_read(world):
    """Its 5xx answers reached users: they count before the settle; answers the serving pods
    made in its place (`fallback`) count only after it."""
    pods, scrape, _ = world
    monitor = ShadowMonitor(scrape, tick=1.0, evidence=CANARY_STEP)
    forwarder = PinnedVersions(None, name="fraud", version="1", shadow=None,
                               max_body_bytes=1024, registry=pods[0].registry)
    st = status(phase="Canary")
    st["revisions"][1].update(canaryStep=0, canaryStepStartedAt=iso(START))

    def answered(code: str, n: int):
        for _ in range(n):
            forwarder._requests.labels("fraud", "1", "2", "canary", code).inc()

    assert measure(monitor, pods, START + 1, st)["r2"].requests == 0  # the baseline, at once
    answered("500", 3)
    answered("fallback", 4)
    early = measure(monitor, pods, START + 3, st)["r2"]
    assert early.codes == {"500": 3} and early.settling  # before the settle
    answered("fallback", 2)
    assert measure(monitor, pods, START + SETTLE_SECONDS, st)["r2"].codes == {"500": 3}
    answered("fallback", 1)
    late = measure(monitor, pods, START + SETTLE_SECONDS + 2, st)["r2"]
    assert late.codes == {"500": 3, "fallback": 1} and not late.settling
