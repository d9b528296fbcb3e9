"""Start, check and stop the three servers under test, and read their processes' CPU time.

modelops runs as `python -m modelops.serving` (the image's command) from the project venv;
MLServer runs as `mlserver start` and KServe as bench/kserve_model.py (its sklearnserver
equivalent), each from its own venv under the cache directory (created here on first use with
pip and our scikit-learn version, so their pins, which conflict with each other, never touch the
project venv). All listen on 127.0.0.1 only. Every process started here is stopped by its PID:
SIGTERM to the server, then SIGKILL to it and to the children it had. Does process and file I/O.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from modelops import contract as c  # noqa: E402

MLSERVER_PINS = ("mlserver==1.7.1", "mlserver-sklearn==1.7.1", "uvloop<0.22")
KSERVE_PINS = ("kserve==0.21.0",)
KSERVE_MODEL = Path(__file__).resolve().parent / "kserve_model.py"
KSERVE_QUIET_LOGS = {
    "version": 1, "disable_existing_loggers": False,
    "handlers": {"stderr": {"class": "logging.StreamHandler", "stream": "ext://sys.stderr"}},
    "loggers": {name: {"handlers": ["stderr"], "level": level, "propagate": False}
                for name, level in (("kserve", "INFO"), ("uvicorn", "INFO"),
                                    ("kserve.trace", "WARNING"), ("uvicorn.access", "WARNING"))},
}
"""KServe's log config with the per-request lines (access log, request timings) off."""
READY_TIMEOUT_SECONDS = 120.0
STOP_TIMEOUT_SECONDS = 20.0
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def cache_dir() -> Path:
    return Path(os.environ.get(c.ENV_CACHE) or Path.home() / ".cache" / "modelops")


def mlserver_venv(sklearn_version: str) -> Path:
    """The MLServer venv (created with pip on first use); the same scikit-learn as ours."""
    return _peer_venv("bench-mlserver", "bin/mlserver", MLSERVER_PINS, sklearn_version)


def kserve_venv(sklearn_version: str) -> Path:
    """The KServe venv (created with pip on first use); the same scikit-learn as ours."""
    return _peer_venv("bench-kserve", "kserve-installed", KSERVE_PINS, sklearn_version)


def _peer_venv(name: str, marker: str, pins: tuple[str, ...], sklearn_version: str) -> Path:
    """A venv of its own under the cache dir; `marker` exists once its install succeeded."""
    venv = cache_dir() / name
    if not (venv / marker).exists():
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        subprocess.run([str(venv / "bin" / "pip"), "install", "-q", *pins,
                        f"scikit-learn=={sklearn_version}"], check=True)
        (venv / marker).touch()
    return venv


@dataclass
class Server:
    """One running server: its process, base URL and the log file it writes."""

    label: str
    process: subprocess.Popen
    url: str
    log_path: Path
    known_children: set[int] = field(default_factory=set)

    @property
    def pid(self) -> int:
        return self.process.pid

    def processes(self) -> list[int]:
        """The server's process and its descendants (gunicorn workers, MLServer workers)."""
        found, queue = [], [self.pid]
        while queue:
            pid = queue.pop()
            found.append(pid)
            queue += _children(pid)
        self.known_children.update(found[1:])
        return found

    def stop(self) -> None:
        """SIGTERM the server (it stops its own workers), then SIGKILL whatever is left."""
        self.processes()
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(STOP_TIMEOUT_SECONDS)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)
        for pid in sorted(self.known_children):
            if _still_a_server(pid):
                os.kill(pid, signal.SIGKILL)


def _children(pid: int) -> list[int]:
    try:
        text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    except OSError:
        return []
    return [int(p) for p in text.split()]


def _still_a_server(pid: int) -> bool:
    """Only kill a PID that still runs a server command of ours (PIDs can be reused)."""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")
    except OSError:
        return False
    return any(word in cmdline for word in ("modelops", "mlserver", "kserve"))


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of one process so far (0 if it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def start_modelops(label: str, model, work: Path, *, workers: int, threads: int,
                   batch_size: int = 1, batch_wait_ms: float = 5.0,
                   extra_env: dict[str, str] | None = None) -> Server:
    port = free_port()
    run_dir = work / f"modelops-{model.name}-{label}"
    run_dir.mkdir(parents=True, exist_ok=True)
    env = {**os.environ,
           c.ENV_MODEL_NAME: model.name, c.ENV_ARTIFACT_URI: str(model.path),
           c.ENV_ARTIFACT_SHA256: model.sha256, c.ENV_ARTIFACT_DIR: str(run_dir / "artifact"),
           c.ENV_HOST: "127.0.0.1", c.ENV_PORT: str(port), c.ENV_WORKERS: str(workers),
           c.ENV_THREADS: str(threads), c.ENV_BATCH_MAX_SIZE: str(batch_size),
           c.ENV_BATCH_MAX_WAIT_MS: str(batch_wait_ms),
           c.ENV_TERMINATION_LOG: str(run_dir / "termination-log"),
           c.ENV_METRICS_DIR: str(run_dir / "metrics"), **(extra_env or {})}
    command = [sys.executable, "-m", "modelops.serving"]
    return _launch(label, command, env, run_dir, f"http://127.0.0.1:{port}")


def start_mlserver(label: str, model, work: Path, venv: Path, *, parallel_workers: int,
                   debug: bool = True, metrics: bool = True, batch_size: int = 1,
                   batch_time_s: float = 0.0) -> Server:
    port = free_port()
    run_dir = work / f"mlserver-{model.name}-{label}"
    model_dir = run_dir / model.name
    model_dir.mkdir(parents=True, exist_ok=True)
    settings = {"host": "127.0.0.1", "http_port": port, "grpc_port": free_port(),
                "metrics_port": free_port(), "parallel_workers": parallel_workers,
                "debug": debug, "metrics_dir": str(run_dir / "metrics")}
    if not metrics:
        settings["metrics_endpoint"] = None
    model_settings = {"name": model.name, "implementation": "mlserver_sklearn.SKLearnModel",
                      "parameters": {"uri": str(model.path)}}
    if batch_size > 1:
        model_settings.update(max_batch_size=batch_size, max_batch_time=batch_time_s)
    (run_dir / "settings.json").write_text(json.dumps(settings))
    (model_dir / "model-settings.json").write_text(json.dumps(model_settings))
    command = [str(venv / "bin" / "mlserver"), "start", str(run_dir)]
    return _launch(label, command, dict(os.environ), run_dir, f"http://127.0.0.1:{port}")


def start_kserve(label: str, model, work: Path, venv: Path, *, workers: int,
                 quiet: bool = False) -> Server:
    """bench/kserve_model.py with `workers` uvicorn processes, gRPC off, v2 over HTTP."""
    port = free_port()
    run_dir = work / f"kserve-{model.name}-{label}"
    run_dir.mkdir(parents=True, exist_ok=True)
    command = [str(venv / "bin" / "python"), str(KSERVE_MODEL), "--model_name", model.name,
               "--model_dir", str(model.path.parent), "--http_port", str(port),
               "--workers", str(workers), "--enable_grpc", "false"]
    if quiet:
        (run_dir / "logging.json").write_text(json.dumps(KSERVE_QUIET_LOGS))
        command += ["--enable_latency_logging", "false",
                    "--log_config_file", str(run_dir / "logging.json")]
    return _launch(label, command, dict(os.environ), run_dir, f"http://127.0.0.1:{port}")


def _launch(label: str, command: list[str], env: dict, run_dir: Path, url: str) -> Server:
    log_path = run_dir / "server.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(command, env=env, cwd=run_dir, stdout=log,
                                   stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    server = Server(label, process, url, log_path)
    try:
        _wait_ready(server)
    except BaseException:
        server.stop()
        raise
    return server


def _wait_ready(server: Server) -> None:
    deadline = time.monotonic() + READY_TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            tail = server.log_path.read_text(errors="replace")[-2000:]
            raise RuntimeError(f"{server.label} exited with {server.process.returncode}:\n{tail}")
        try:
            with urllib.request.urlopen(server.url + c.PATH_READY, timeout=2) as answer:
                if answer.status == 200:
                    server.processes()
                    return
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.2)
    raise RuntimeError(f"{server.label} not ready after {READY_TIMEOUT_SECONDS:.0f} s")


def check_answer(server: Server, model, body: bytes) -> None:
    """One real request: 200 with one `predict` output for one row, or an error."""
    request = urllib.request.Request(f"{server.url}/v2/models/{model.name}/infer", data=body,
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=30) as answer:
        payload = json.loads(answer.read())
    outputs = payload.get("outputs") or []
    if len(outputs) != 1 or outputs[0].get("shape") not in ([1], [1, 1]):
        raise RuntimeError(f"{server.label}: unexpected answer {payload}")
