"""Pinned requests between real servers (`python -m modelops.serving` under gunicorn on loopback):
the serving model A (version 1, 2 workers) forwards requests pinned to its shadow candidate B
(version 2, which differs from A on 30 % of the rows) once its annotations file names B. A client
keeping one connection open alternates pinned and unpinned requests: each answer is exactly the
named version's (compared with B asked directly), says who made it, and the forwarded ones are
counted as forwarded, not as A's requests, and are not copied in shadow."""

from __future__ import annotations

import time

import requests
from serving_support import metric
from test_shadow_process import ROWS, V2_BODY, annotate, servers  # noqa: F401 (the fixture)

from modelops import contract as c


def predictions(reply: requests.Response) -> list:
    assert reply.status_code == 200, reply.text
    body = reply.json()
    return body["predictions"] if "predictions" in body else body["outputs"][0]["data"]


def served_by(server, version: str) -> float:
    text = server.metrics()
    return sum(metric(text, c.METRIC_REQUESTS, protocol=p, code="200", version=version) or 0
               for p in ("v1", "v2"))


def test_a_version_in_shadow_answers_pinned_requests_through_the_serving_pods(servers):
    serving, candidate, annotations = servers
    ours = predictions(requests.post(f"{serving.url}/v2/models/first/infer", json=V2_BODY))
    theirs = predictions(requests.post(f"{candidate.url}/v2/models/first/infer", json=V2_BODY))
    assert sum(a != b for a, b in zip(ours, theirs)) == 3  # the two versions tell apart
    before = requests.post(f"{serving.url}/v2/models/first/versions/2/infer", json=V2_BODY)
    assert before.status_code == 404 and "reaches version 1" in before.json()["error"]

    annotate(annotations, candidate.url)
    served_before, candidate_before = served_by(serving, "1"), served_by(candidate, "2")
    session, pinned = requests.Session(), 0
    for index in range(40):
        kind = index % 4
        if kind == 0:
            reply, expected = session.post(f"{serving.url}/v2/models/first/infer",
                                           json=V2_BODY), ("1", ours)
        elif kind == 1:
            reply, expected = session.post(f"{serving.url}/v2/models/first/versions/2/infer",
                                           json=V2_BODY), ("2", theirs)
        elif kind == 2:
            reply, expected = session.post(f"{serving.url}/v1/models/first:predict",
                                           json={"instances": ROWS},
                                           headers={c.HEADER_VERSION: "2"}), ("2", theirs)
        else:
            reply, expected = session.post(f"{serving.url}/v1/models/first:predict",
                                           json={"instances": ROWS},
                                           headers={c.HEADER_VERSION: "1"}), ("1", ours)
        assert (reply.headers[c.HEADER_VERSION], predictions(reply)) == expected, index
        pinned += expected[0] == "2"
    text = serving.metrics()
    assert metric(text, c.METRIC_FORWARDED_REQUESTS, target="2", code="200") == pinned == 20
    assert served_by(serving, "1") - served_before == 20  # only its own answers
    # the candidate answered the pinned ones and the copies of unpinned ones, nothing more
    # (a copy's outcome is counted just after the candidate answered it: let them settle)
    deadline, extra = time.monotonic() + 10, None
    while extra != 0 and time.monotonic() < deadline:
        time.sleep(0.2)
        copies = sum(metric(serving.metrics(), c.METRIC_SHADOW_REQUESTS, candidate="2",
                            outcome=o) or 0 for o in ("mirrored", "error"))
        extra = served_by(candidate, "2") - candidate_before - 20 - copies
    assert extra == 0


def test_the_canary_share_is_answered_by_the_candidate_across_workers(servers):
    """30 % of unpinned requests answered by B, through both of A's workers; each side counts
    exactly the answers it made, and a user named by the hash header stays on one side."""
    serving, candidate, annotations = servers
    annotations.write_text("\n".join([
        f'{c.ANNOTATION_SHADOW_URL}="{candidate.url}"', f'{c.ANNOTATION_SHADOW_VERSION}="2"',
        f'{c.ANNOTATION_SHADOW_PERCENT}="0"', f'{c.ANNOTATION_CANARY_PERCENT}="30"',
        f'{c.ANNOTATION_CANARY_HASH_HEADER}="X-User"']) + "\n")
    time.sleep(1.5)  # every worker re-reads the file once a second
    served_before, candidate_before = served_by(serving, "1"), served_by(candidate, "2")
    session, sides = requests.Session(), {"1": 0, "2": 0}
    for _ in range(300):
        reply = session.post(f"{serving.url}/v1/models/first:predict", json={"instances": ROWS})
        assert reply.status_code == 200
        sides[reply.headers[c.HEADER_VERSION]] += 1
    users = {user: {session.post(f"{serving.url}/v1/models/first:predict",
                                 json={"instances": ROWS}, headers={"X-User": f"u{user}"})
                    .headers[c.HEADER_VERSION] for _ in range(4)} for user in range(30)}
    annotate(annotations, None)
    print(f"\ncanary 30 %: {sides['2']} of 300 answered by the candidate; "
          f"{sum(seen == {'2'} for seen in users.values())} of 30 users on the candidate's side")
    assert 0.2 <= sides["2"] / 300 <= 0.4, sides
    assert all(len(seen) == 1 for seen in users.values()), users
    by_users = sum(seen == {"2"} for seen in users.values()) * 4
    assert served_by(serving, "1") - served_before == sides["1"] + 120 - by_users
    assert served_by(candidate, "2") - candidate_before == sides["2"] + by_users
    text = serving.metrics()
    assert (metric(text, c.METRIC_FORWARDED_REQUESTS, route="canary", code="200")
            == sides["2"] + by_users)
