"""Drive a server with wrk and measure one cell: requests/s, p50, p99 and CPU per process.

wrk (Debian's package) runs bench/lua/infer.lua, which POSTs the same v2 infer body on every
request and prints its figures as one JSON line. While wrk runs, the CPU time of each of the
server's processes is sampled before and after, so an idle worker shows up. For modelops the
requests each gunicorn worker answered are read from its prometheus multiprocess files.
Runs wrk; reads /proc.
"""

from __future__ import annotations

import json
import subprocess
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from serving_servers import Server, cpu_seconds

from modelops import contract as c

LUA_SCRIPT = Path(__file__).resolve().parent / "lua" / "infer.lua"
MARKER = "BENCH_JSON "


@dataclass(frozen=True)
class Cell:
    """The figures of one server configuration at one connection count."""

    connections: int
    requests_per_second: float
    p50_ms: float
    p99_ms: float
    errors: int
    cpu_by_process: tuple[float, ...]
    """CPU seconds per server process during the run (master/main first)."""
    requests_by_worker: tuple[int, ...] = ()

    @property
    def worker_cpu_split(self) -> str:
        busy = sorted((s for s in self.cpu_by_process if s >= 0.05), reverse=True)
        return "/".join(f"{s:.1f}" for s in busy) or "-"


def run_wrk(server: Server, path: str, body_file: Path, *, connections: int,
            seconds: float) -> Cell:
    pids = server.processes()
    before = {pid: cpu_seconds(pid) for pid in pids}
    requests_before = requests_by_worker(server)
    threads = min(2, connections)
    command = ["wrk", f"-t{threads}", f"-c{connections}", f"-d{seconds:g}s", "--timeout", "10s",
               "-s", str(LUA_SCRIPT), server.url + path, "--", str(body_file)]
    output = subprocess.run(command, capture_output=True, text=True, check=True,
                            timeout=seconds + 60).stdout
    figures = _parse(output)
    cpu = tuple(cpu_seconds(pid) - before[pid] for pid in pids)
    after = requests_by_worker(server)
    served = tuple(sorted((after[pid] - requests_before.get(pid, 0) for pid in after),
                          reverse=True))
    errors = sum(figures[k] for k in ("connect_errors", "read_errors", "write_errors",
                                      "non_2xx", "timeouts"))
    return Cell(connections, figures["requests"] / (figures["duration_us"] / 1e6),
                figures["p50_us"] / 1000, figures["p99_us"] / 1000, errors, cpu, served)


def _parse(output: str) -> dict:
    for line in output.splitlines():
        if line.startswith(MARKER):
            return json.loads(line[len(MARKER):])
    raise RuntimeError(f"wrk printed no figures:\n{output}")


def requests_by_worker(server: Server) -> dict[int, int]:
    """modelops only: inference requests answered so far, by worker PID (empty for MLServer)."""
    directory = server.log_path.parent / "metrics"
    if not directory.is_dir() or "modelops" not in server.log_path.parent.name:
        return {}
    from prometheus_client.mmap_dict import MmapedDict

    counts: Counter[int] = Counter()
    for path in directory.glob("counter_*.db"):
        pid = int(path.stem.split("_")[1])
        for key, value, _, _ in MmapedDict.read_all_values_from_file(str(path)):
            if json.loads(key)[1] == c.METRIC_REQUESTS:
                counts[pid] += int(value)
    return dict(counts)
