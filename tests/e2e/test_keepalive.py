"""Keep-alive clients follow the Service on a real node (issue 11): clients that hold one HTTP
connection each (as requests.Session, Go and Java clients do) keep talking to whichever pod
accepted it. When a new version takes the Service, the old version's pods stay warm for
rollback but are labelled standby and answer `Connection: close`, so every client reconnects
through the Service and reaches the new version within seconds, without a failed request."""

from __future__ import annotations

import time

from tests.cluster.support import wait_for
from tests.e2e.support import apply, deploy_v1, model_manifest, service_url, sha256_hex

NAME = "sticky"
CLIENTS = 4


def test_keep_alive_clients_reach_the_new_version_within_seconds(
        e2e_cluster, namespace, artifacts, client, record_property):
    deploy_v1(e2e_cluster, namespace, artifacts, NAME, replicas=2)
    api = e2e_cluster.api()
    old = api.service_revision(namespace, NAME)
    host = service_url(NAME, namespace, "").removeprefix("http://")
    load = client.start_keepalive(host, f"/v2/models/{NAME}/infer", concurrency=CLIENTS,
                                  max_seconds=300)
    try:
        time.sleep(5)  # the connections are open and settled on v1's pods
        v2 = model_manifest(NAME, "2", "configMap://artifacts/good.joblib",
                            sha256_hex(artifacts["good.joblib"]), replicas=2,
                            rollback={"bakeWindow": "10m"})
        apply(e2e_cluster.access, namespace, v2)
        wait_for(lambda: api.service_revision(namespace, NAME) not in (None, old),
                 timeout=240, interval=0.2, what="v2 taking the Service")
        switched = time.time()
        time.sleep(20)
    finally:
        result = load.stop()
    answers = result["answers"]
    before = [v for t, v in answers if t < switched]
    after = [(t, v) for t, v in answers if t >= switched]
    first_v2 = min((t for t, v in after if v == "2"), default=None)
    settled = [v for t, v in after if t >= switched + 5]
    share = sum(v == "2" for v in settled) / max(len(settled), 1)
    seconds = None if first_v2 is None else round(first_v2 - switched, 2)
    record_property("seconds_to_first_new_version_answer", seconds)
    record_property("new_version_share_after_5s", round(share, 4))
    print(f"\nkeep-alive: {len(before)} answers before the switch, {len(after)} after; first v2 "
          f"answer {seconds} s after the switch; {share:.2%} of answers from v2 after 5 s; "
          f"{result['connections']} connections opened; codes {result['codes']}")
    assert before and set(before) == {"1"}, "the clients were served by v1 first"
    assert result["codes"].keys() == {200}, result["errors"][:5]
    assert first_v2 is not None and seconds < 5, seconds
    assert len(settled) > 100 and share == 1.0, (len(settled), share)
    assert result["connections"] > CLIENTS, "the clients reconnected after the switch"
