"""PrometheusSource against a real Prometheus scraping real exporters on loopback every second.

Prometheus's increase() extrapolates to the window's edges, so a count is checked against a
range: never below the true increase (every series here starts at 0, which stops extrapolation
to the left), and at most 20 % above it (half a scrape interval to the right). Counts from the
wrong version or namespace would land far outside that range. The error rate is exact, because
all series of one target are sampled at the same instants and so are extrapolated alike.
"""

import time

import pytest

from modelops.operator.analysis import RollbackPolicy, WindowStats, decide
from modelops.operator.metrics_source import PrometheusSource

pytestmark = pytest.mark.prometheus

WINDOW = 300  # seconds: longer than this module runs, so every sample is in the window
SERIES = {  # (model, version, protocol, code) created at 0 before Prometheus starts
    "demo": [("iris", "2", "v2", "200"), ("iris", "2", "v2", "500"), ("iris", "1", "v2", "500"),
             ("iris", "3", "v2", "200"), ("iris", "r", "v1", "200")],
    "other": [("iris", "2", "v2", "500")],
}


def wait_for(check, what: str, timeout: float = 30):
    """Poll check() until it returns something truthy; fail naming `what` after timeout."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = check()
        if result:
            return result
        time.sleep(0.2)
    pytest.fail(f"timed out after {timeout}s waiting for {what}")


@pytest.fixture(scope="module")
def seeded(exporters):
    for namespace, series in SERIES.items():
        for labels in series:
            exporters[namespace].requests.labels(*labels)
    return exporters


@pytest.fixture(scope="module")
def source(seeded, prometheus):
    """A PrometheusSource once Prometheus holds two samples of every seeded series."""
    source = PrometheusSource(prometheus.url)
    wait_for(lambda: source.query("min(count_over_time(modelops_requests_total[5m]))") >= 2,
             "two scrapes of every series")
    return source


def samples_of(source, selector: str) -> float:
    return source.query(f"count_over_time({selector}[5m])")


def settle(source, selector: str, value: float) -> None:
    """Wait until Prometheus has scraped `value` and then three more samples of the series."""
    wait_for(lambda: source.query(selector) == value, f"{selector} == {value}")
    seen = samples_of(source, selector)
    wait_for(lambda: samples_of(source, selector) >= seen + 3, f"3 more samples of {selector}")


def test_window_stats_counts_one_versions_increase(seeded, source):
    demo, other = seeded["demo"], seeded["other"]
    demo.requests.labels("iris", "2", "v2", "200").inc(190)
    demo.requests.labels("iris", "2", "v2", "500").inc(10)
    demo.requests.labels("iris", "1", "v2", "500").inc(1000)  # another version
    other.requests.labels("iris", "2", "v2", "500").inc(1000)  # another namespace
    settle(source, 'modelops_requests_total{namespace="demo",version="2",code="500"}', 10)

    stats = source.window_stats(namespace="demo", model="iris", version="2", window_seconds=WINDOW)

    assert 200 <= stats.requests <= 240
    assert 10 <= stats.errors <= 12
    assert stats.error_rate == pytest.approx(0.05, rel=1e-9)
    assert decide(RollbackPolicy(error_rate_threshold=0.049), stats,
                  previous_breaches=0).result == "Failed"
    assert decide(RollbackPolicy(error_rate_threshold=0.051), stats,
                  previous_breaches=0).result == "Passed"


def test_a_flat_counter_is_zero_and_an_unknown_version_is_empty(source):
    flat = source.window_stats(namespace="demo", model="iris", version="3", window_seconds=WINDOW)
    unknown = source.window_stats(namespace="demo", model="iris", version="9",
                                  window_seconds=WINDOW)
    assert flat == WindowStats(0, 0) and unknown == WindowStats(0, 0)
    assert decide(RollbackPolicy(), unknown, previous_breaches=2).result == "Inconclusive"


def test_a_counter_reset_counts_from_zero(seeded, source):
    labels = ("iris", "r", "v1", "200")
    counter = seeded["demo"].requests
    counter.labels(*labels).inc(50)
    selector = 'modelops_requests_total{namespace="demo",version="r"}'
    settle(source, selector, 50)
    counter.remove(*labels)  # the pod restarted: its counter starts again at 0
    counter.labels(*labels).inc(5)
    settle(source, selector, 5)

    stats = source.window_stats(namespace="demo", model="iris", version="r", window_seconds=WINDOW)

    assert 55 <= stats.requests <= 66 and stats.errors == 0
