"""ScrapeSource against real prometheus_client exporters on loopback; PrometheusSource against a
loopback server answering like Prometheus's /api/v1/query. Failure cases use real sockets too."""

import json
import math
import re
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse
from wsgiref.simple_server import WSGIRequestHandler, make_server

import pytest
from prometheus_client import CollectorRegistry, Counter, Gauge, make_wsgi_app
from prometheus_client.exposition import ThreadingWSGIServer

from modelops import contract
from modelops.operator import metrics_source
from modelops.operator.analysis import PodCounters, WindowStats
from modelops.operator.metrics_source import (
    MetricsUnavailable,
    PrometheusSource,
    ScrapeSource,
    promql_range,
    promql_string,
)

POLL = 0.05  # serve_forever's shutdown poll; the 0.5 s default makes teardown slow


class QuietHandler(WSGIRequestHandler):
    def log_message(self, *args):
        pass


class Exporter:
    """A real prometheus_client registry served over HTTP on 127.0.0.1, like a serving pod."""

    def __init__(self):
        self.registry = CollectorRegistry()
        self.requests = Counter(contract.METRIC_REQUESTS, "Requests", ["model", "version",
                                "protocol", "code"], registry=self.registry)
        self.quality = Gauge(contract.METRIC_QUALITY, "Quality", ["model", "version", "metric"],
                             registry=self.registry)
        self.server = make_server("127.0.0.1", 0, make_wsgi_app(self.registry), ThreadingWSGIServer,
                                  handler_class=QuietHandler)
        self.thread = threading.Thread(target=self.server.serve_forever, args=(POLL,), daemon=True)
        self.thread.start()
        self.url = f"http://127.0.0.1:{self.server.server_port}{contract.PATH_METRICS}"

    def close(self):
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)


@pytest.fixture
def exporters():
    started = []

    def start():
        started.append(Exporter())
        return started[-1]

    yield start
    for exporter in started:
        exporter.close()


@pytest.fixture
def http_server():
    """Start a loopback HTTP server whose GETs are answered by respond(path, query)."""
    servers = []

    def start(respond):
        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                url = urlparse(self.path)
                status, content_type, body = respond(url.path, parse_qs(url.query))
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        thread = threading.Thread(target=server.serve_forever, args=(POLL,), daemon=True)
        thread.start()
        servers.append((server, thread))
        return f"http://127.0.0.1:{server.server_port}"

    yield start
    for server, thread in servers:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def refused_url():
    """A loopback URL where nothing listens (a port we bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}/metrics"


# --- ScrapeSource -----------------------------------------------------------------------------


def test_snapshot_sums_codes_and_protocols_for_one_version(exporters):
    pod_a, pod_b = exporters(), exporters()
    pod_a.requests.labels("iris", "2", "v2", "200").inc(90)
    pod_a.requests.labels("iris", "2", "v1", "200").inc(5)
    pod_a.requests.labels("iris", "2", "v2", "500").inc(4)
    pod_a.requests.labels("iris", "2", "v2", "503").inc(1)
    pod_a.requests.labels("iris", "2", "v2", "400").inc(7)  # client errors are not errors
    pod_a.requests.labels("iris", "1", "v2", "500").inc(100)  # another version
    pod_a.requests.labels("wine", "2", "v2", "500").inc(100)  # another model
    pod_b.requests.labels("iris", "2", "v2", "200").inc(3)

    snapshot = ScrapeSource().snapshot({"pod-a": pod_a.url, "pod-b": pod_b.url},
                                       model="iris", version="2", now=1234.5)

    assert snapshot.time == 1234.5
    assert snapshot.pods == {"pod-a": PodCounters(107, 5), "pod-b": PodCounters(3, 0)}
    assert snapshot.unscraped == {}


def test_snapshot_of_a_pod_with_no_requests_yet_is_zero(exporters):
    pod = exporters()
    snapshot = ScrapeSource().snapshot({"pod": pod.url}, model="iris", version="1", now=0)
    assert snapshot.pods == {"pod": PodCounters(0, 0)}


def test_snapshot_follows_counters_between_scrapes(exporters):
    pod = exporters()
    source = ScrapeSource()
    counter = pod.requests.labels("iris", "1", "v2", "200")
    counter.inc(10)
    first = source.snapshot({"pod": pod.url}, model="iris", version="1", now=0)
    counter.inc(32)
    second = source.snapshot({"pod": pod.url}, model="iris", version="1", now=15)
    assert (first.pods["pod"].requests, second.pods["pod"].requests) == (10, 42)


def fixed_response_url(http_server, status, content_type, body):
    return http_server(lambda path, query: (status, content_type, body)) + "/metrics"


@pytest.mark.parametrize(
    ("status", "body", "reason"),
    [
        (500, b"boom", r"^answered HTTP 500$"),
        (200, b"<html><body>not metrics</body></html>\n", r"^not in the Prometheus text format$"),
        (200, b"modelops_requests_total{code=\"200\" 12\n", r"^not in the Prometheus text format$"),
    ],
    ids=["http-500", "html", "truncated"],
)
def test_a_failing_pod_is_listed_and_the_rest_still_count(exporters, http_server, status, body,
                                                          reason):
    good = exporters()
    good.requests.labels("iris", "1", "v2", "200").inc(8)
    bad_url = fixed_response_url(http_server, status, "text/plain", body)

    snapshot = ScrapeSource().snapshot({"good": good.url, "bad": bad_url},
                                       model="iris", version="1", now=0)

    assert snapshot.pods == {"good": PodCounters(8, 0)}
    assert list(snapshot.unscraped) == ["bad"]
    assert re.search(reason, snapshot.unscraped["bad"])


def test_all_pods_failing_is_metrics_unavailable(http_server):
    url_500 = fixed_response_url(http_server, 500, "text/plain", b"boom")
    url_refused = refused_url()
    with pytest.raises(MetricsUnavailable) as caught:
        ScrapeSource().snapshot({"p1": url_500, "p2": url_refused}, model="m", version="1", now=0)
    message = str(caught.value)
    assert message.startswith("no serving pod could be scraped: ")
    assert "p1: answered HTTP 500" in message and "p2: connection refused" in message


def test_an_oversized_page_is_refused(http_server, monkeypatch):
    monkeypatch.setattr(metrics_source, "MAX_METRICS_BYTES", 1000)
    # the cap is checked as bytes arrive, so the page is cut without reading it whole
    url = fixed_response_url(http_server, 200, "text/plain", b"# filler\n" * 500)
    with pytest.raises(MetricsUnavailable, match="sent more than 1000 bytes"):
        ScrapeSource().snapshot({"p": url}, model="m", version="1", now=0)


def test_no_pods_is_metrics_unavailable():
    with pytest.raises(MetricsUnavailable, match="no serving pods to scrape"):
        ScrapeSource().snapshot({}, model="m", version="1", now=0)


def test_a_slow_pod_times_out(http_server):
    release = threading.Event()

    def slow(path, query):
        release.wait(5)
        return 200, "text/plain", b""

    url = http_server(slow) + "/metrics"
    try:
        with pytest.raises(MetricsUnavailable, match=r"p: no complete answer within 0\.2s"):
            ScrapeSource(timeout=0.2).snapshot({"p": url}, model="m", version="1", now=0)
    finally:
        release.set()


def test_quality_is_averaged_over_pods_and_skips_nan(exporters):
    pod_a, pod_b, pod_c = exporters(), exporters(), exporters()
    pod_a.quality.labels("iris", "2", "accuracy").set(0.9)
    pod_b.quality.labels("iris", "2", "accuracy").set(0.8)
    pod_c.quality.labels("iris", "2", "accuracy").set(math.nan)  # no feedback yet
    pod_a.quality.labels("iris", "1", "accuracy").set(0.1)  # another version
    urls = {"a": pod_a.url, "b": pod_b.url, "c": pod_c.url}
    quality = ScrapeSource().quality(urls, model="iris", version="2")
    assert quality == {"accuracy": pytest.approx(0.85)}


def test_quality_with_no_feedback_is_empty(exporters):
    pod = exporters()
    assert ScrapeSource().quality({"p": pod.url}, model="iris", version="1") == {}


def test_quality_fails_when_no_pod_answers():
    with pytest.raises(MetricsUnavailable, match="connection refused"):
        ScrapeSource().quality({"p": refused_url()}, model="iris", version="1")


def test_scrape_source_refuses_a_bad_timeout():
    with pytest.raises(ValueError, match="timeout"):
        ScrapeSource(timeout=0)


# --- PrometheusSource -------------------------------------------------------------------------


def vector(*values):
    result = [{"metric": {}, "value": [1700000000.0, str(value)]} for value in values]
    return {"status": "success", "data": {"resultType": "vector", "result": result}}


def fake_prometheus(http_server, answer):
    """A loopback Prometheus: answer(query) -> (status, payload); records each request's
    parameters as a dict (query, and time when given)."""
    calls = []

    def respond(path, query):
        if path != "/api/v1/query":
            return 404, "text/plain", b"404 page not found"
        calls.append({name: values[0] for name, values in query.items()})
        status, payload = answer(query["query"][0])
        body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        return status, "application/json", body

    return http_server(respond), calls


def test_window_stats_sends_increase_queries_and_sums_results(http_server):
    def answer(query):
        return 200, vector(6.5) if 'code=~"5.*"' in query else vector(100.25, 30)

    url, calls = fake_prometheus(http_server, answer)
    stats = PrometheusSource(url + "/").window_stats(namespace="demo", model="iris", version="2",
                                                    window_seconds=120, now=1700000000.25)
    assert stats == WindowStats(requests=130.25, errors=6.5)
    selector = 'modelops_requests_total{namespace="demo",model="iris",version="2"'
    assert calls == [  # both at one instant, so increase() extrapolates both alike
        {"query": f"sum(increase({selector}}}[120s]))", "time": "1700000000.250"},
        {"query": f'sum(increase({selector},code=~"5.*"}}[120s]))', "time": "1700000000.250"},
    ]


def test_window_stats_defaults_to_one_shared_instant(http_server):
    url, calls = fake_prometheus(http_server, lambda query: (200, vector(1)))
    PrometheusSource(url).window_stats(namespace="d", model="m", version="1", window_seconds=60)
    assert calls[0]["time"] == calls[1]["time"]


def test_query_without_a_time_lets_prometheus_choose(http_server):
    url, calls = fake_prometheus(http_server, lambda query: (200, vector(3)))
    assert PrometheusSource(url).query("up") == 3 and calls == [{"query": "up"}]


def test_empty_result_is_zero_requests(http_server):
    url, _ = fake_prometheus(http_server, lambda query: (200, vector()))
    stats = PrometheusSource(url).window_stats(namespace="d", model="m", version="1",
                                               window_seconds=60)
    assert stats == WindowStats(0, 0) and stats.error_rate is None


def test_namespace_label_can_be_left_out(http_server):
    url, calls = fake_prometheus(http_server, lambda query: (200, vector(1)))
    source = PrometheusSource(url, namespace_label=None)
    source.window_stats(namespace="d", model="m", version="1", window_seconds=1.5)
    selector = 'modelops_requests_total{model="m",version="1"}'
    assert calls[0]["query"] == f"sum(increase({selector}[1500ms]))"


@pytest.mark.parametrize(
    ("status", "payload", "reason"),
    [
        (400, {"status": "error", "errorType": "bad_data", "error": "parse error at char 5"},
         "Prometheus answered HTTP 400: bad_data parse error at char 5"),
        (503, b"Service Unavailable", "Prometheus answered HTTP 503 with a body that is not JSON"),
        (200, b"{not json", "Prometheus answered HTTP 200 with a body that is not JSON"),
        (200, {"status": "success", "data": {"resultType": "matrix", "result": []}},
         "no instant vector"),
        (200, {"status": "success", "data": {"resultType": "vector", "result": [{"metric": {}}]}},
         "cannot read Prometheus result"),
        (200, {"status": "success", "data": {"resultType": "vector",
                                             "result": [{"metric": {}, "value": [1, "x"]}]}},
         "cannot read Prometheus result"),
        (200, {"status": "error", "error": "query timed out"}, "query timed out"),
    ],
    ids=["bad-query", "503-text", "garbage", "matrix", "no-value", "bad-number", "error-200"],
)
def test_prometheus_errors_are_metrics_unavailable(http_server, status, payload, reason):
    url, _ = fake_prometheus(http_server, lambda query: (status, payload))
    with pytest.raises(MetricsUnavailable, match=reason):
        PrometheusSource(url).window_stats(namespace="d", model="m", version="1",
                                           window_seconds=60)


def test_nan_from_prometheus_is_passed_on_for_decide_to_judge(http_server):
    url, _ = fake_prometheus(http_server, lambda query: (200, vector("NaN")))
    stats = PrometheusSource(url).window_stats(namespace="d", model="m", version="1",
                                               window_seconds=60)
    assert math.isnan(stats.requests)


def test_prometheus_refused_is_metrics_unavailable():
    base = refused_url().removesuffix("/metrics")
    with pytest.raises(MetricsUnavailable, match="Prometheus connection refused"):
        PrometheusSource(base).query("up")


@pytest.mark.parametrize(("kwargs", "match"), [
    ({"base_url": "localhost:9090"}, r"http\(s\)://"),
    ({"base_url": "http://x", "timeout": -1}, "timeout"),
])
def test_prometheus_source_refuses_bad_settings(kwargs, match):
    with pytest.raises(ValueError, match=match):
        PrometheusSource(**kwargs)


@pytest.mark.parametrize(("value", "quoted"), [("v1", '"v1"'), ('a"b', r'"a\"b"'),
                                               ("a\\b", r'"a\\b"'), ("a\nb", r'"a\nb"')])
def test_promql_string(value, quoted):
    assert promql_string(value) == quoted


@pytest.mark.parametrize(("seconds", "text"), [(120, "120s"), (120.0, "120s"), (0.5, "500ms")])
def test_promql_range(seconds, text):
    assert promql_range(seconds) == text


def test_promql_range_refuses_zero():
    with pytest.raises(ValueError, match="window_seconds"):
        promql_range(0)


# --- scrapes that cannot hurt (review-security H4, H5) -------------------------------------------
def test_a_redirect_is_not_followed_and_the_target_is_never_asked(http_server):
    asked = []

    def target(path, query):
        asked.append(path)
        return 200, "text/plain", b'{"SecretAccessKey":"wJalrXUtnFEMI"}\n'

    target_url = http_server(target) + "/v1/config"

    class Redirect(BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(302)
            self.send_header("Location", target_url)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Redirect)
    threading.Thread(target=server.serve_forever, args=(POLL,), daemon=True).start()
    try:
        with pytest.raises(MetricsUnavailable) as caught:
            ScrapeSource(timeout=2).snapshot(
                {"pod-a": f"http://127.0.0.1:{server.server_port}/metrics"},
                model="m", version="1", now=0)
    finally:
        server.shutdown()
        server.server_close()
    assert str(caught.value) == "no serving pod could be scraped: pod-a: answered HTTP 302"
    assert asked == []


@pytest.mark.parametrize("page", [b'"Code":"Success","SecretAccessKey":"wJalrXUtnFEMI"\n',
                                  b"my-node-role\n", b"<html>Admin console: 3 users</html>\n"])
def test_no_part_of_a_page_reaches_the_reason(http_server, page):
    url = fixed_response_url(http_server, 200, "text/plain", page)
    with pytest.raises(MetricsUnavailable) as caught:
        ScrapeSource().snapshot({"p": url}, model="m", version="1", now=0)
    for word in (b"Secret", b"node-role", b"Admin", b"Success"):
        assert word.decode() not in str(caught.value)


def trickling_server(stop: threading.Event):
    """/metrics that sends one byte a second (never a complete page) until `stop`."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)

    def serve():
        listener.settimeout(0.1)
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except OSError:
                continue
            threading.Thread(target=drip, args=(conn,), daemon=True).start()
        listener.close()

    def drip(conn):
        with conn:
            try:
                conn.sendall(b"HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n\r\n")
                while not stop.wait(1.0):
                    conn.sendall(b"#")
            except OSError:
                pass

    threading.Thread(target=serve, daemon=True).start()
    return f"http://127.0.0.1:{listener.getsockname()[1]}/metrics"


def test_a_trickling_pod_is_cut_off_at_the_total_deadline_and_the_others_count(exporters):
    stop = threading.Event()
    good = exporters()
    good.requests.labels("iris", "1", "v2", "200").inc(5)
    try:
        url = trickling_server(stop)
        # the pod drips until `stop`, which is set only after the scrape returned: without a
        # total deadline this call would not return at all (requests' timeout is per read)
        snapshot = ScrapeSource(timeout=1.5).snapshot({"good": good.url, "slow": url},
                                                      model="iris", version="1", now=0)
    finally:
        stop.set()
    assert snapshot.pods == {"good": PodCounters(5, 0)}
    assert snapshot.unscraped == {"slow": "no complete answer within 1.5s"}


def test_many_pods_are_listed_by_three_and_a_count():
    with pytest.raises(MetricsUnavailable) as caught:
        ScrapeSource().snapshot({f"p{i}": refused_url() for i in range(10)},
                                model="m", version="1", now=0)
    assert str(caught.value).endswith("(and 7 more)")
