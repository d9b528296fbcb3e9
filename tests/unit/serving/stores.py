"""Real stores on loopback for the artifact-source tests: moto's S3 server and `mlflow server`.

Both run from the test-servers venv (tools/testservers/venv.sh, cached outside the tree) and are
seeded with store_tool.py in that venv. Each fixture starts its process, waits for the port and
stops it by its PID.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import requests

from tests.ports import free_port

REPO = Path(__file__).resolve().parents[3]
TOOL = Path(__file__).with_name("store_tool.py")


def servers_venv() -> Path:
    out = subprocess.run(["bash", str(REPO / "tools/testservers/venv.sh")], check=True,
                         capture_output=True, text=True, timeout=900)
    return Path(out.stdout.strip().splitlines()[-1])


def wait_http(url: str, process: subprocess.Popen, seconds: float = 90) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{url}: server exited with {process.returncode}")
        try:
            requests.get(url, timeout=1)
            return
        except requests.RequestException:
            time.sleep(0.3)
    raise RuntimeError(f"{url} did not answer within {seconds} s")


def stop(process: subprocess.Popen) -> None:
    process.terminate()
    try:
        process.wait(10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(5)


@dataclass
class Tool:
    venv: Path

    def run(self, *args: str) -> str:
        out = subprocess.run([str(self.venv / "bin/python"), str(TOOL), *args], check=True,
                             capture_output=True, text=True, timeout=300,
                             env={**os.environ, "MLFLOW_ALLOW_PICKLE_DESERIALIZATION": "true"})
        return out.stdout


@dataclass
class S3Store:
    endpoint: str
    key: str
    secret: str
    tool: Tool

    def put(self, bucket: str, name: str, path: Path) -> None:
        self.tool.run("put", self.endpoint, self.key, self.secret, bucket, name, str(path))


def start_s3(venv: Path, log: Path, host: str = "127.0.0.1") -> tuple[subprocess.Popen, S3Store]:
    """moto with IAM authentication after the first 3 (seeding) requests: wrong keys are refused.
    `host`: the address to listen on (loopback; the e2e tier uses the node's bridge address,
    which only this host's pods can reach)."""
    port = free_port()
    env = {**os.environ, "INITIAL_NO_AUTH_ACTION_COUNT": "3"}
    process = subprocess.Popen([str(venv / "bin/moto_server"), "-H", host, "-p", str(port)],
                               stdout=log.open("wb"), stderr=subprocess.STDOUT, env=env)
    endpoint = f"http://{host}:{port}"
    wait_http(endpoint + "/moto-api/", process)
    tool = Tool(venv)
    keys = json.loads(tool.run("iam", endpoint).strip().splitlines()[-1])
    return process, S3Store(endpoint, keys["key"], keys["secret"], tool)


@dataclass
class MlflowServer:
    uri: str
    tool: Tool

    def log(self, name: str, serialization: str, *artifacts: Path) -> list[str]:
        """Log and register each joblib artifact as a new version (one mlflow import for all)."""
        out = self.tool.run("log", self.uri, name, serialization, *map(str, artifacts))
        return json.loads(out.strip().splitlines()[-1])["versions"]

    def alias(self, name: str, alias: str, version: str) -> None:
        """Point an alias at a version through the registry's REST API."""
        response = requests.post(f"{self.uri}/api/2.0/mlflow/registered-models/alias",
                                 json={"name": name, "alias": alias, "version": version}, timeout=10)
        response.raise_for_status()


def start_mlflow(venv: Path, workdir: Path, host: str = "127.0.0.1"
                 ) -> tuple[subprocess.Popen, MlflowServer]:
    port = free_port()
    command = [str(venv / "bin/mlflow"), "server", "--host", host, "--port", str(port),
               "--workers", "1", "--backend-store-uri", f"sqlite:///{workdir / 'mlflow.db'}",
               "--artifacts-destination", str(workdir / "artifacts")]
    process = subprocess.Popen(command, stdout=(workdir / "mlflow.log").open("wb"),
                               stderr=subprocess.STDOUT, cwd=workdir)
    uri = f"http://{host}:{port}"
    wait_http(uri + "/health", process, seconds=180)
    return process, MlflowServer(uri, Tool(venv))


def model_file_sha256(uri: str, name: str, version: str, where: Path) -> str:
    """The sha256 of a registered version's model file, downloaded as the init container would."""
    from modelops import contract
    from modelops.serving.artifact import fetch, file_sha256
    from modelops.serving.settings import ServingSettings

    settings = ServingSettings(model_name=name, artifact_uri=f"models:/{name}/{version}",
                               artifact_dir=where, download_timeout_seconds=30)
    return file_sha256(fetch(settings, environ={contract.ENV_MLFLOW_TRACKING_URI: uri}))
