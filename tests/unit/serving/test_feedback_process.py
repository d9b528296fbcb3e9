"""Feedback over real HTTP: two gunicorn servers (two pods) with 3 workers each, one key.

Tokens made by one server are scored by the other and after a restart; forged and replayed
tokens are refused with 4xx; the counters are exact across workers.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import requests
from serving_support import IRIS_ROW, metric
from test_process import _no_server_left_behind, start  # noqa: F401 (autouse fixture)

KEY = "feedback-key-for-the-test-0123456789abcdef"
ROWS = 120


def _predict(url):
    body = {"inputs": [{"name": "x", "shape": [1, 4], "datatype": "FP64", "data": IRIS_ROW}]}
    answer = requests.post(f"{url}/v2/models/iris/infer", json=body, timeout=10).json()
    return answer["parameters"]["feedback_tokens"][0], answer["outputs"][0]["data"][0]


def _feedback(url, token, truth):
    return requests.post(f"{url}/v2/models/iris/feedback", json={"token": token, "truth": truth},
                         timeout=10).status_code


def test_any_pod_scores_once_exactly(artifacts, tmp_path):
    env = artifacts.iris.env("iris", "1", MODELOPS_FEEDBACK_KEY=KEY)
    a = start(tmp_path, env, workers=3)
    b = start(tmp_path, env, workers=3)
    with ThreadPoolExecutor(8) as pool:
        made = list(pool.map(lambda _: _predict(a.url), range(ROWS)))
        # B (the other pod) scores all of A's predictions; half of them wrongly
        codes = list(pool.map(lambda i: _feedback(b.url, made[i][0],
                                                  made[i][1] if i % 2 else (made[i][1] + 1) % 3),
                              range(ROWS)))
        assert codes == [200] * ROWS
        replays = list(pool.map(lambda i: _feedback(b.url, made[i][0], 0), range(ROWS)))
        assert replays == [409] * ROWS
    text = b.metrics()
    assert metric(text, "modelops_feedback_rows_total", model="iris", version="1") == ROWS
    assert metric(text, "modelops_feedback_correct_total", model="iris", version="1") == ROWS / 2
    token, predicted = made[0]
    forged = token[:-4] + ("AAAA" if not token.endswith("AAAA") else "BBBB")
    assert _feedback(b.url, forged, predicted) == 403
    late_token, late_value = _predict(a.url)
    assert a.stop() == 0
    a2 = start(tmp_path, env, workers=3)  # a restarted pod (new process, same key)
    assert _feedback(a2.url, late_token, late_value) == 200
    assert metric(a2.metrics(), "modelops_feedback_rows_total", model="iris", version="1") == 1
    assert metric(b.metrics(), "modelops_feedback_requests_total", model="iris", version="1",
                  code="409") == ROWS
