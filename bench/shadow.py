"""Shadow benchmark: what copying predict requests to a candidate costs the users' answers.

    .venv/bin/python bench/shadow.py [--duration 10] [--connections 1,8] [--workers 2]
                                     [--repeat 1]

One modelops server (iris LogisticRegression, `--workers` x 4 threads) is driven by wrk (the
v2 infer body of bench/serving.py, one row) in three modes, switched through its annotations
file between runs as the operator would, without a restart: shadow off; on at 100 % to a
healthy candidate (the same model in a second modelops server, 1 worker); on at 100 % to a
candidate that accepts connections and never answers. Prints requests/s, p50 and p99 of the
users' answers side by side, the ratios against shadow off, what became of the copies (from
the server's own metrics), and the load average, since this machine's cores are shared (the
healthy candidate runs on the same cores, which a real cluster would not do: the serving
server's own CPU per answer is shown apart, so the forwarder's cost is visible). Modes are
interleaved per repeat; the median is shown. Loopback only; every process is stopped by PID.
"""

from __future__ import annotations

import argparse
import os
import shlex
import socket
import statistics
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

from serving_load import Cell, run_wrk
from serving_models import train_models
from serving_servers import Server, check_answer, start_modelops

from modelops import contract as c

MODES = ("off", "on, healthy candidate", "on, hanging candidate")
WARMUP_SECONDS = 2.0
SWITCH_SECONDS = 1.5  # every worker re-reads the annotations once a second


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=10.0, help="seconds of wrk per cell")
    parser.add_argument("--connections", default="1,8", help="comma-separated")
    parser.add_argument("--workers", type=int, default=2, help="the serving server's workers")
    parser.add_argument("--repeat", type=int, default=1, help="runs of every cell (median shown)")
    return parser.parse_args(argv)


class Hanging:
    """A 'candidate' that accepts every connection and never answers."""

    def __init__(self) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0), backlog=1024)
        self.url = f"http://127.0.0.1:{self.listener.getsockname()[1]}"
        self._held: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                self._held.append(self.listener.accept()[0])
            except OSError:
                return

    def close(self) -> None:
        self.listener.close()
        for held in self._held:
            held.close()


def annotate(path: Path, url: str | None) -> None:
    lines = [f'{c.ANNOTATION_SHADOW_URL}="{url}"', f'{c.ANNOTATION_SHADOW_VERSION}="2"'] if url else []
    fresh = path.with_suffix(".tmp")
    fresh.write_text("\n".join(lines) + "\n")
    fresh.replace(path)
    time.sleep(SWITCH_SECONDS)


def copy_outcomes(server: Server) -> dict[str, float]:
    from prometheus_client.parser import text_string_to_metric_families

    with urllib.request.urlopen(server.url + c.PATH_METRICS, timeout=10) as answer:
        text = answer.read().decode()
    totals = dict.fromkeys(c.SHADOW_OUTCOMES, 0.0)
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == c.METRIC_SHADOW_REQUESTS:
                totals[sample.labels["outcome"]] += sample.value
    return totals


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    connections = [int(n) for n in args.connections.split(",")]
    cells: dict[str, dict[int, list[Cell]]] = {m: {n: [] for n in connections} for m in MODES}
    copies: dict[str, dict[str, float]] = {m: dict.fromkeys(c.SHADOW_OUTCOMES, 0.0) for m in MODES}
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="modelops-bench-shadow-") as tmp:
        work = Path(tmp)
        iris = next(m for m in train_models(work) if m.name == "iris")
        body_file = work / "body.json"
        body_file.write_bytes(iris.infer_body())
        annotations = work / "annotations"
        annotate(annotations, None)
        hanging = Hanging()
        candidate = start_modelops("candidate", iris, work, workers=1, threads=4)
        serving = start_modelops("serving", iris, work, workers=args.workers, threads=4,
                                 extra_env={c.ENV_POD_ANNOTATIONS_FILE: str(annotations)})
        urls = {MODES[0]: None, MODES[1]: candidate.url, MODES[2]: hanging.url}
        path = f"/v2/models/{iris.name}/infer"
        try:
            check_answer(serving, iris, iris.infer_body())
            run_wrk(serving, path, body_file, connections=8, seconds=WARMUP_SECONDS)
            for _ in range(args.repeat):
                for mode in MODES:
                    annotate(annotations, urls[mode])
                    for n in connections:
                        before = copy_outcomes(serving)
                        cell = run_wrk(serving, path, body_file, connections=n, seconds=args.duration)
                        after = copy_outcomes(serving)
                        for outcome in c.SHADOW_OUTCOMES:
                            copies[mode][outcome] += after[outcome] - before[outcome]
                        cells[mode][n].append(cell)
                        print(f"  {mode:24} {n:2} conns: {cell.requests_per_second:8,.0f} req/s  "
                              f"p50 {cell.p50_ms:6.2f} ms  p99 {cell.p99_ms:6.2f} ms  "
                              f"errors {cell.errors}", file=sys.stderr, flush=True)
        finally:
            serving.stop()
            candidate.stop()
            hanging.close()
    print_report(cells, copies, connections, args, argv, time.monotonic() - started)
    return 0


def _cpu_per_answer(cell: Cell, seconds: float) -> float:
    """CPU microseconds the serving server's processes spent per answer (the candidate's own
    CPU is not in it)."""
    return sum(cell.cpu_by_process) / (cell.requests_per_second * seconds) * 1e6


def _median(values: list[Cell], field: str) -> float:
    return statistics.median(getattr(cell, field) for cell in values)


def print_report(cells, copies, connections, args, argv, elapsed: float) -> None:
    print(f"Load average (1, 5, 15 min) at the end: {' '.join(f'{v:.2f}' for v in os.getloadavg())}"
          f" on {os.cpu_count()} CPUs; serving {args.workers} workers x 4 threads, "
          f"candidate 1 x 4, {args.duration:g} s per cell, median of {args.repeat}\n")
    print("| Shadow | conns | req/s | p50 ms | p99 ms | req/s vs off | p50 vs off | p99 vs off "
          "| serving CPU us/answer |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for mode in MODES:
        for n in connections:
            rps, p50, p99 = (_median(cells[mode][n], f)
                             for f in ("requests_per_second", "p50_ms", "p99_ms"))
            off = [_median(cells[MODES[0]][n], f)
                   for f in ("requests_per_second", "p50_ms", "p99_ms")]
            errors = sum(cell.errors for cell in cells[mode][n])
            flag = f" ({errors} errors)" if errors else ""
            print(f"| {mode}{flag} | {n} | {rps:,.0f} | {p50:.2f} | {p99:.2f} | "
                  f"{rps / off[0]:.2f} | {p50 / off[1]:.2f} | {p99 / off[2]:.2f} | "
                  f"{statistics.median(_cpu_per_answer(cell, args.duration) for cell in cells[mode][n]):,.0f} |")
    print("\nCopies (all connection counts, from modelops_shadow_requests_total):\n")
    print("| Shadow | " + " | ".join(c.SHADOW_OUTCOMES) + " |")
    print("|---|" + "---:|" * len(c.SHADOW_OUTCOMES))
    for mode in MODES[1:]:
        print(f"| {mode} | " + " | ".join(f"{copies[mode][o]:,.0f}" for o in c.SHADOW_OUTCOMES)
              + " |")
    command = " ".join([".venv/bin/python", "bench/shadow.py", *map(shlex.quote, argv)])
    print(f"\nReproduce: `{command}` ({elapsed / 60:.1f} min)")


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
