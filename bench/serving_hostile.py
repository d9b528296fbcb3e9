"""Hostile-client figures for the serving image: stalled connections and a 10 MiB body's memory.

1. Stalled connections: a real server (1 worker, 2 threads) on 127.0.0.1 with threads + 2 (and
   then 4 x threads) half-sent requests open; prints the latency of normal v2 requests meanwhile.
   Before the read gate (gate.py), 2 such connections froze the worker indefinitely.
2. Memory: peak RSS added by parsing one 10 MiB v2 body (and a 10 MiB v1 body) into the model's
   input, in a fresh process each, with the stdlib json parser (before) and orjson (after).
Bounded: at most ~60 requests and ~1 minute. Run: python bench/serving_hostile.py
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests" / "unit" / "serving"))

STALL = b"POST /v2/models/iris/infer HTTP/1.1\r\nHost: x\r\nContent-Length: 1000000\r\n\r\n{"
ROW = [5.1, 3.5, 1.4, 0.2]

MEMORY_PROBE = r"""
import json, resource, sys
import numpy as np
from modelops.serving import body, v1, v2
from modelops.serving.model import Signature
if sys.argv[1] == "json":
    body.orjson.loads = lambda data: (_ for _ in ()).throw(body.orjson.JSONDecodeError("off", "", 0))
kind = sys.argv[2]
rows = 475_000
data = [[5.1, 3.5, 1.4, 0.2]] * rows
if kind == "v2":
    raw = json.dumps({"inputs": [{"name": "x", "shape": [rows, 4], "datatype": "FP64", "data": data}]}).encode()
else:
    raw = json.dumps({"instances": data}).encode()
del data
sig = Signature(n_features=4, allow_nan=False)
base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
if kind == "v2":
    matrix = v2.features_from_inputs(v2.parse_infer_request(raw).inputs, sig)
else:
    matrix = v1.parse_predict_request(raw, sig)
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({"body_mib": len(raw) / 2**20, "extra_mib": (peak - base) / 1024, "rows": matrix.shape[0]}))
"""


def memory() -> None:
    print("peak RSS added by one 10 MiB body (fresh process each):")
    for kind in ("v2", "v1"):
        figures = {}
        for parser in ("json", "orjson"):
            out = subprocess.run([sys.executable, "-c", MEMORY_PROBE, parser, kind], cwd=ROOT,
                                 capture_output=True, text=True, timeout=120, check=True)
            figures[parser] = json.loads(out.stdout)
        before, after = figures["json"]["extra_mib"], figures["orjson"]["extra_mib"]
        print(f"  {kind} {figures['json']['body_mib']:.1f} MiB body: stdlib json +{before:.0f} MiB, "
              f"orjson +{after:.0f} MiB (ratio {after / before:.2f})")


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def slow_connections() -> None:
    import requests
    from serving_support import dump, train_iris

    threads = 2
    with tempfile.TemporaryDirectory() as tmp:
        artifact = dump(train_iris(), Path(tmp) / "iris.joblib")
        port = _free_port()
        env = {**{k: v for k, v in os.environ.items() if not k.startswith("MODELOPS_")},
               **artifact.env("iris", "1"), "PYTHONPATH": f"{ROOT / 'tests/unit/serving'}:{ROOT}",
               "MODELOPS_HOST": "127.0.0.1", "MODELOPS_PORT": str(port), "MODELOPS_WORKERS": "1",
               "MODELOPS_THREADS": str(threads), "PROMETHEUS_MULTIPROC_DIR": f"{tmp}/metrics",
               "MODELOPS_TERMINATION_LOG": f"{tmp}/termination-log"}
        server = subprocess.Popen([sys.executable, "-m", "modelops.serving"], env=env, cwd=tmp,
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        url = f"http://127.0.0.1:{port}"
        body = {"inputs": [{"name": "x", "shape": [1, 4], "datatype": "FP64", "data": ROW}]}
        try:
            for _ in range(600):
                try:
                    if requests.get(f"{url}/v2/health/ready", timeout=1).status_code == 200:
                        break
                except requests.RequestException:
                    pass
                time.sleep(0.1)
            for stalled_count in (threads + 2, 4 * threads):
                stalled = [socket.create_connection(("127.0.0.1", port)) for _ in range(stalled_count)]
                for sock in stalled:
                    sock.sendall(STALL)
                time.sleep(0.5)
                latencies = []
                for _ in range(20):
                    started = time.perf_counter()
                    assert requests.post(f"{url}/v2/models/iris/infer", json=body, timeout=5).ok
                    latencies.append(time.perf_counter() - started)
                for sock in stalled:
                    sock.close()
                latencies.sort()
                print(f"  {stalled_count} stalled connections open ({threads} threads): normal requests "
                      f"median {latencies[10] * 1000:.1f} ms, max {latencies[-1] * 1000:.1f} ms")
        finally:
            server.terminate()
            server.wait(timeout=30)


def main() -> None:
    print(f"machine load (1 min): {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores")
    print("stalled connections:")
    slow_connections()
    memory()


if __name__ == "__main__":
    main()
