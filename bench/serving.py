"""Serving benchmark: modelops against MLServer and KServe on the same two models, driven by wrk.

    .venv/bin/python bench/serving.py [--duration 10] [--connections 1,8,32] [--workers 2]
                                      [--repeat 1] [--only LABEL,...] [--models iris,forest]

Serves LogisticRegression on iris (4 features) and a 100-tree RandomForest (20 features) with
modelops (`python -m modelops.serving`, gunicorn), with MLServer 1.7.1 (+ mlserver-sklearn, in
its own venv under ~/.cache/modelops/bench-mlserver) and with KServe 0.21's Python server
(bench/kserve_model.py, an equivalent of KServe's sklearnserver, in its own venv under
~/.cache/modelops/bench-kserve; both venvs are created with pip on first use), each in the
configurations below, and drives each with wrk over the v2 infer endpoint, one row per request,
at 1, 8 and 32 connections. Prints requests/s, p50 and p99, the ratios against the goals of
issue 2 and against KServe (issue 12), the requests and CPU per worker process, and the
in-process limit of model.predict, as markdown, followed by the command line that reproduced
it. Only KServe, say: `--only "modelops default,KServe default,KServe lean" --connections 8,32`.
Loopback only; every process it starts is stopped by PID.
"""

from __future__ import annotations

import argparse
import shlex
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import sklearn

from serving_load import Cell, run_wrk
from serving_models import BenchModel, in_process_limit, train_models
from serving_report import (
    BATCHING, BEST_INLINE, BEST_WORKERS, DEFAULT, KSERVE_DEFAULT, KSERVE_LEAN, OURS,
    OURS_BATCHING, Results, balance_table, figures_table, limit_table, ratio_table,
)
from serving_servers import (
    Server, check_answer, kserve_venv, mlserver_venv, start_kserve, start_mlserver, start_modelops,
)

WARMUP_SECONDS = 2.0
WARMUP_CONNECTIONS = 8


@dataclass(frozen=True)
class Configuration:
    label: str
    description: str
    side: str
    """modelops | mlserver | kserve"""
    options: dict = field(default_factory=dict)


def configurations(workers: int, batch_size: int, batch_wait_ms: float) -> list[Configuration]:
    """Every side's configurations; modelops, MLServer's best and KServe use `workers`."""
    batch = {"batch_size": batch_size}
    threads = max(4, batch_size)  # what the operator sets: a batch needs one thread per request
    lean = {"debug": False, "metrics": False}  # no access log, no metrics: MLServer's fastest
    return [
        Configuration(DEFAULT, "its defaults: parallel_workers=1, debug on, metrics on",
                      "mlserver", {"parallel_workers": 1}),
        Configuration(BEST_INLINE, "parallel_workers=0 (inference in the server process), "
                      "debug off, metrics off", "mlserver", {"parallel_workers": 0, **lean}),
        Configuration(BEST_WORKERS, f"parallel_workers={workers}, debug off, metrics off",
                      "mlserver", {"parallel_workers": workers, **lean}),
        Configuration(BATCHING, f"parallel_workers=0, debug off, metrics off, max_batch_size="
                      f"{batch_size}, max_batch_time={batch_wait_ms:g} ms", "mlserver",
                      {"parallel_workers": 0, **lean, **batch,
                       "batch_time_s": batch_wait_ms / 1000}),
        Configuration(OURS, f"{workers} workers x 4 threads, other settings default", "modelops",
                      {"workers": workers, "threads": 4}),
        Configuration(OURS_BATCHING, f"{workers} workers x {threads} threads, "
                      f"BATCH_MAX_SIZE={batch_size}, BATCH_MAX_WAIT_MS={batch_wait_ms:g}",
                      "modelops", {"workers": workers, "threads": threads, **batch,
                                   "batch_wait_ms": batch_wait_ms}),
        Configuration(KSERVE_DEFAULT, f"workers={workers}, gRPC off, other settings default "
                      "(access log and request timings logged)", "kserve", {"workers": workers}),
        Configuration(KSERVE_LEAN, f"workers={workers}, gRPC off, latency logging off, access "
                      "and timing logs off", "kserve", {"workers": workers, "quiet": True}),
    ]


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=10.0, help="seconds of wrk per cell")
    parser.add_argument("--connections", default="1,8,32", help="comma-separated")
    parser.add_argument("--workers", type=int, default=2, help="worker processes on both sides")
    parser.add_argument("--repeat", type=int, default=1, help="runs of every cell (median shown)")
    parser.add_argument("--models", default="iris,forest", help="comma-separated: iris, forest")
    parser.add_argument("--only", default="", help="comma-separated configuration labels")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--batch-wait-ms", type=float, default=5.0)
    parser.add_argument("--skip-limit", action="store_true", help="skip the in-process limit")
    return parser.parse_args(argv)


def start(config: Configuration, model: BenchModel, work: Path, venvs: dict[str, Path]) -> Server:
    label = config.label.replace(" ", "-")
    if config.side == "modelops":
        return start_modelops(label, model, work, **config.options)
    peer = start_mlserver if config.side == "mlserver" else start_kserve
    return peer(label, model, work, venvs[config.side], **config.options)


def peer_venvs(chosen: list[Configuration]) -> dict[str, Path]:
    """The venvs of the peers among `chosen` (each created on first use)."""
    makers = {"mlserver": mlserver_venv, "kserve": kserve_venv}
    sides = {config.side for config in chosen} & makers.keys()
    return {side: makers[side](sklearn.__version__) for side in sorted(sides)}


def measure(config: Configuration, model: BenchModel, work: Path, venvs: dict[str, Path],
            connections: list[int], seconds: float) -> dict[int, Cell]:
    """Start the server, check one answer, warm it up, run every connection count, stop it."""
    body_file = work / f"{model.name}-body.json"
    body_file.write_bytes(model.infer_body())
    path = f"/v2/models/{model.name}/infer"
    server = start(config, model, work, venvs)
    try:
        check_answer(server, model, model.infer_body())
        run_wrk(server, path, body_file, connections=WARMUP_CONNECTIONS, seconds=WARMUP_SECONDS)
        cells = {}
        for n in connections:
            cells[n] = run_wrk(server, path, body_file, connections=n, seconds=seconds)
            print(f"  {model.name:6} {config.label:18} {n:2} conns: "
                  f"{cells[n].requests_per_second:8,.0f} req/s  p50 {cells[n].p50_ms:6.1f} ms  "
                  f"p99 {cells[n].p99_ms:6.1f} ms  errors {cells[n].errors}  "
                  f"cpu {cells[n].worker_cpu_split}", file=sys.stderr, flush=True)
        return cells
    finally:
        server.stop()


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    connections = [int(n) for n in args.connections.split(",")]
    chosen = configurations(args.workers, args.batch_size, args.batch_wait_ms)
    if args.only:
        wanted = {label.strip() for label in args.only.split(",")}
        chosen = [config for config in chosen if config.label in wanted]
    venvs = peer_venvs(chosen)
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="modelops-bench-serving-") as tmp:
        work = Path(tmp)
        models = [m for m in train_models(work) if m.name in args.models.split(",")]
        limits = {} if args.skip_limit else {m.name: in_process_limit(m) for m in models}
        results: Results = {m.name: {c.label: {} for c in chosen} for m in models}
        for _ in range(args.repeat):
            for model in models:
                for config in chosen:
                    cells = measure(config, model, work, venvs, connections, args.duration)
                    for n, cell in cells.items():
                        results[model.name][config.label].setdefault(n, []).append(cell)
    print_report(results, {c.label: c.description for c in chosen}, connections, limits,
                 argv, time.monotonic() - started)
    return 0


def print_report(results: Results, descriptions: dict[str, str], connections: list[int],
                 limits: dict, argv: list[str], elapsed: float) -> None:
    sections = [
        ["Requests/s · p50 ms · p99 ms, one row per request (median; range over repeats):", "",
         *figures_table(results, descriptions, connections)],
        ["Ratios (requests/s) and p99:", "", *ratio_table(results, connections)],
        ["Balance across worker processes (last repeat):", "",
         *balance_table(results, connections)],
    ]
    if limits:
        sections.append(["In-process limit (one core):", "", *limit_table(limits)])
    for lines in sections:
        print("\n".join(lines) + "\n")
    command = " ".join([".venv/bin/python", "bench/serving.py", *map(shlex.quote, argv)])
    print(f"Reproduce: `{command}` ({elapsed / 60:.1f} min)")


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
