"""Shadow traffic between real servers: `python -m modelops.serving` under gunicorn on loopback.

The serving model A (2 workers) copies its predict requests to a candidate B (another server)
once its annotations file says so: every copy ends in exactly one outcome, both workers send
copies, and the disagreement share is exactly the candidate's (B differs on 30 % of the rows).
A candidate that hangs or is down never delays the users' answers (its copies time out or fail,
and the rest are shed, all counted): the deadline per copy is 4 s, and no answer takes 3 s.
"""

from __future__ import annotations

import json
import socket
import statistics
import threading
import time
from pathlib import Path

import pytest
import requests
from prometheus_client.mmap_dict import MmapedDict
from serving_support import metric, shadow_rows, threshold_artifacts
from test_process import start
from test_shadow import RawServer, _hang

from modelops import contract as c

WORKERS, SENDERS, QUEUE = 2, 1, 4
COPY_DEADLINE = 4.0
ANSWER_BOUND = 3.0  # an answer that waited for its copy would take COPY_DEADLINE
ROWS = shadow_rows(10, 0.3, 0.0, 0.3)
V2_BODY = {"inputs": [{"name": "x", "shape": [10, 4], "datatype": "FP64",
                       "data": [v for row in ROWS for v in row]}]}


@pytest.fixture(scope="module")
def servers(tmp_path_factory):
    work = tmp_path_factory.mktemp("shadow")
    artifacts = threshold_artifacts(work, {"a": 0.0, "b": 0.3})
    annotations = work / "annotations"
    annotate(annotations, None)
    candidate = start(work, artifacts["b"].env("first", "2"), workers=1)
    serving = start(work, artifacts["a"].env("first", "1", **{
        c.ENV_POD_ANNOTATIONS_FILE: str(annotations), c.ENV_SHADOW_QUEUE: str(QUEUE),
        c.ENV_SHADOW_SENDERS: str(SENDERS), c.ENV_SHADOW_TIMEOUT: str(COPY_DEADLINE)}),
        workers=WORKERS)
    yield serving, candidate, annotations
    assert serving.stop() == 0 and candidate.stop() == 0


def annotate(path: Path, url: str | None, version: str = "2") -> None:
    """Write the annotations file as the kubelet does (a new file swapped in), then wait for
    every worker's next read (at most once a second)."""
    lines = ['kubectl.kubernetes.io/restartedAt="2026-12-02T08:00:00Z"']
    if url:
        lines += [f'{c.ANNOTATION_SHADOW_URL}="{url}"', f'{c.ANNOTATION_SHADOW_VERSION}="{version}"']
    fresh = path.with_suffix(".tmp")
    fresh.write_text("\n".join(lines) + "\n")
    fresh.replace(path)
    time.sleep(1.5)


def answer_times(url: str, count: int, threads: int = 4) -> list[float]:
    """POST `count` predict requests (v1 and v2 in turn, each on a new connection); the
    seconds each answer took. Every answer must be a 200."""
    times, lock = [], threading.Lock()

    def run(indexes):
        for index in indexes:
            started = time.perf_counter()
            if index % 2:
                reply = requests.post(f"{url}/v1/models/first:predict", json={"instances": ROWS},
                                      timeout=30)
            else:
                reply = requests.post(f"{url}/v2/models/first/infer", json=V2_BODY, timeout=30)
            assert reply.status_code == 200, reply.text
            with lock:
                times.append(time.perf_counter() - started)

    workers = [threading.Thread(target=run, args=(range(i, count, threads),)) for i in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=300)
    assert len(times) == count
    return times


def outcomes(server, candidate: str, wanted: int, timeout: float = 60.0) -> dict:
    """The outcome counts for `candidate`, once at least `wanted` copies have one."""
    deadline = time.monotonic() + timeout
    while True:
        text = server.metrics()
        counts = {o: metric(text, c.METRIC_SHADOW_REQUESTS, candidate=candidate, outcome=o) or 0
                  for o in c.SHADOW_OUTCOMES}
        if sum(counts.values()) >= wanted or time.monotonic() > deadline:
            counts["rows"] = metric(text, c.METRIC_SHADOW_ROWS, candidate=candidate) or 0
            counts["disagreements"] = metric(text, c.METRIC_SHADOW_DISAGREEMENTS,
                                             candidate=candidate) or 0
            return counts
        time.sleep(0.1)


def copies_by_worker(metrics_dir: Path) -> dict[int, float]:
    counts: dict[int, float] = {}
    for path in metrics_dir.glob("counter_*.db"):
        for key, value, *_ in MmapedDict.read_all_values_from_file(str(path)):
            if json.loads(key)[1] == c.METRIC_SHADOW_REQUESTS:
                pid = int(path.stem.split("_")[-1])
                counts[pid] = counts.get(pid, 0) + value
    return counts


def test_copies_start_when_annotated_and_disagree_on_the_candidates_share(servers):
    serving, candidate, annotations = servers
    answer_times(serving.url, 20)
    assert metric(serving.metrics(), c.METRIC_SHADOW_REQUESTS) is None  # no annotations: off
    annotate(annotations, candidate.url)
    sent = 80
    answer_times(serving.url, sent)
    counts = outcomes(serving, "2", sent)
    assert counts["mirrored"] + counts["shed"] == sent, counts
    assert counts["mirrored"] >= sent // 4, counts
    assert counts["rows"] == 10 * counts["mirrored"]
    assert counts["disagreements"] == 3 * counts["mirrored"]  # exactly 30 % of the rows
    assert len([n for n in copies_by_worker(serving.metrics_dir).values() if n > 0]) == WORKERS
    text = candidate.metrics()
    served = sum(metric(text, c.METRIC_REQUESTS, protocol=p, code="200") or 0 for p in ("v1", "v2"))
    assert served == counts["mirrored"]  # the candidate answered the copies and nothing else


def test_a_hanging_candidate_never_delays_the_answers(servers):
    serving, _, annotations = servers
    hanging = RawServer(_hang)
    annotate(annotations, hanging.url, version="hangs")
    sent = 60
    times = answer_times(serving.url, sent)
    assert max(times) < ANSWER_BOUND and statistics.median(times) < 1.0, sorted(times)[-5:]
    counts = outcomes(serving, "hangs", sent, timeout=3 * COPY_DEADLINE + 30)
    assert sum(counts[o] for o in c.SHADOW_OUTCOMES) == sent, counts
    # only what fit in the senders and queues was sent (each then timed out); the rest was shed
    assert 1 <= counts["timeout"] <= WORKERS * (SENDERS + QUEUE), counts
    assert counts["shed"] >= sent - WORKERS * (SENDERS + QUEUE), counts
    assert counts["mirrored"] == counts["unreachable"] == counts["error"] == 0
    hanging.close()


def test_a_candidate_that_is_down_is_counted_unreachable(servers):
    serving, _, annotations = servers
    with socket.create_server(("127.0.0.1", 0)) as probe:
        down = f"http://127.0.0.1:{probe.getsockname()[1]}"
    annotate(annotations, down, version="down")
    sent = 30
    times = answer_times(serving.url, sent)
    assert max(times) < ANSWER_BOUND
    counts = outcomes(serving, "down", sent, timeout=2 * COPY_DEADLINE + 30)
    assert counts["unreachable"] + counts["shed"] == sent and counts["unreachable"] >= 1, counts
    annotate(annotations, None)
    text = serving.metrics()
    assert metric(text, c.METRIC_SHADOW_PERCENT, candidate="down") == 0  # switched off
