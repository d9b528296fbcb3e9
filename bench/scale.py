"""Operator scale: create N Models (100, 300, 1000) on the local control plane and measure the
time until every Model has its Deployment, its Service and a status that observed its
generation, and the operator's peak RSS. A fresh control plane and operator per N; progress is
followed through watches, so the observer adds one event per change, not repeated lists.

    .venv/bin/python bench/scale.py [N ...]

Goal (issue 11): 1000 Models converged in under 30 s with under 250 MiB RSS, the cost growing
linearly to 3000 (the per-Model figures are printed). It gives up after 180 s per 1000 Models.
MODELOPS_BENCH_PPROF=<dir> also writes a CPU profile of kube-apiserver for each N there.

Beside each operator run, on a fresh control plane of its own, the floor (scale_floor.py): a
plain client writing the same children once each, with no operator. It prints the ratio, so a
goal out of reach for the control plane alone on this machine shows as such. Measured on the
2-core dev machine, quiet: 1000 Models, operator 24.4-26.0 s, floor 17.9-18.7 s (1.31-1.42x);
3000 Models 80.8 s vs 56.5 s (1.43x). On slower days: 39.9-56.8 s beside a floor of 25.6-34.2 s.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import kubernetes

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from modelops import contract  # noqa: E402
from modelops.devcluster.binaries import resolve_bin_dir  # noqa: E402
from modelops.devcluster.cluster import ControlPlane, ControlPlaneSettings  # noqa: E402
from modelops.devcluster.components import BINARIES  # noqa: E402
from bench.scale_floor import FloorClient  # noqa: E402
from tests.cluster.support import OperatorProcess  # noqa: E402
from tests.factories import model_spec  # noqa: E402

NAMESPACE = "scale"


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (/proc/<pid>/stat fields 14 and 15)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def request_counts(kubectl: list[str]) -> Counter:
    """The API server's requests so far by (verb, resource), from apiserver_request_total."""
    text = subprocess.run([*kubectl, "get", "--raw", "/metrics"], check=True,
                          capture_output=True, text=True).stdout
    counts: Counter = Counter()
    for line in text.splitlines():
        if line.startswith("apiserver_request_total{"):
            labels = dict(re.findall(r'(\w+)="([^"]*)"', line))
            key = (labels.get("verb", ""), labels.get("resource", "") +
                   ("/" + labels["subresource"] if labels.get("subresource") else ""))
            counts[key] += float(line.rsplit(" ", 1)[1])
    return counts


def peak_rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


class Convergence:
    """Counts converged Models from watch streams (Models with status.observedGeneration equal
    to their generation, our Deployments, our Services), so observing costs the API server one
    event per change instead of re-listing thousands of objects."""

    def __init__(self, api: kubernetes.client.ApiClient):
        self.api, self.stop = api, threading.Event()
        self.observed: set[str] = set()
        self.deployments: set[str] = set()
        self.services: set[str] = set()
        selector = f"{contract.LABEL_MANAGED_BY}={contract.MANAGED_BY}"
        custom = kubernetes.client.CustomObjectsApi(api)
        streams = [
            (self.observed, lambda **kw: custom.list_namespaced_custom_object(
                contract.API_GROUP, contract.API_VERSION, NAMESPACE, contract.MODEL_PLURAL, **kw),
             self._model_converged),
            (self.deployments, lambda **kw: kubernetes.client.AppsV1Api(api).
             list_namespaced_deployment(NAMESPACE, label_selector=selector, **kw), None),
            (self.services, lambda **kw: kubernetes.client.CoreV1Api(api).
             list_namespaced_service(NAMESPACE, label_selector=selector, **kw), None)]
        self.threads = [threading.Thread(target=self._follow, args=stream, daemon=True)
                        for stream in streams]
        for thread in self.threads:
            thread.start()

    @staticmethod
    def _model_converged(obj: dict) -> bool:
        return (obj.get("status") or {}).get("observedGeneration") == obj["metadata"]["generation"]

    def _follow(self, found: set, lister, check) -> None:
        while not self.stop.is_set():
            watch = kubernetes.watch.Watch()
            try:
                for event in watch.stream(lister, timeout_seconds=30):
                    obj = event["object"]
                    obj = obj if isinstance(obj, dict) else self.api.sanitize_for_serialization(obj)
                    name = obj["metadata"]["name"]
                    if event["type"] != "DELETED" and (check is None or check(obj)):
                        found.add(name)
                    if self.stop.is_set():
                        return
            except Exception:  # noqa: BLE001 - a dropped watch is re-opened
                time.sleep(0.5)

    def state(self) -> tuple[int, int, int]:
        return len(self.observed), len(self.deployments), len(self.services)


def _apiserver_profile(kubectl: list[str], n: int, mode: str) -> subprocess.Popen | None:
    """With MODELOPS_BENCH_PPROF=<dir>: a 30 s CPU profile of kube-apiserver from the first
    create on, written to <dir>/apiserver-<mode>-<n>.pprof (read it with `go tool pprof -top`)."""
    directory = os.environ.get("MODELOPS_BENCH_PPROF")
    if not directory:
        return None
    Path(directory).mkdir(parents=True, exist_ok=True)
    path = Path(directory) / f"apiserver-{mode}-{n}.pprof"
    out = open(path, "wb")  # noqa: SIM115 - the child owns it
    return subprocess.Popen([*kubectl, "get", "--raw", "/debug/pprof/profile?seconds=30"],
                            stdout=out)


def run(n: int, bin_dir: Path, work: Path, mode: str) -> dict:
    """One fresh control plane; `mode` "operator" (Models created, the operator does the rest)
    or "floor" (scale_floor.py: a plain client writes what the operator would, once)."""
    plane = ControlPlane(ControlPlaneSettings(bin_dir=bin_dir, work_dir=work / f"cp-{mode}-{n}"))
    plane.start()
    operator = None
    try:
        kubectl = [str(bin_dir / "kubectl"), f"--kubeconfig={plane.kubeconfig}"]
        subprocess.run([*kubectl, "apply", "-k", str(ROOT / "crds")], check=True,
                       capture_output=True)
        subprocess.run([*kubectl, "wait", "--for=condition=Established", "--timeout=180s",
                        "crd/models.modelops.io"], check=True, capture_output=True)
        subprocess.run([*kubectl, "create", "namespace", NAMESPACE], check=True,
                       capture_output=True)
        api = kubernetes.config.new_client_from_config(str(plane.kubeconfig))
        pids = {p.component.name: p.pid for p in plane.processes}
        pids["bench client"] = os.getpid()
        if mode == "operator":
            operator = OperatorProcess(plane.kubeconfig, work / f"operator-{n}.log",
                                       tick_seconds="5").start()
            pids["operator"] = operator.process.pid
            make = _creator(api)
        else:
            make = FloorClient(api, NAMESPACE, model_spec(replicas=1)).one
        result = _measure(n, api, kubectl, pids, make, mode)
        result["rss_mib"] = peak_rss_mib(operator.process.pid) if operator else float("nan")
        return result
    finally:
        if operator:
            operator.stop()
        plane.stop()


def _creator(api: kubernetes.client.ApiClient):
    custom, spec = kubernetes.client.CustomObjectsApi(api), model_spec(replicas=1)

    def create(i: int) -> None:
        body = {"apiVersion": contract.API_GROUP_VERSION, "kind": contract.MODEL_KIND,
                "metadata": {"name": f"m{i:04d}"}, "spec": spec}
        custom.create_namespaced_custom_object(contract.API_GROUP, contract.API_VERSION,
                                               NAMESPACE, contract.MODEL_PLURAL, body)
    return create


def _measure(n: int, api, kubectl: list[str], pids: dict[str, int], make, mode: str) -> dict:
    """Call make(i) for i < n from 8 threads, then wait for convergence (watches)."""
    progress = Convergence(api)
    before = request_counts(kubectl)
    cpu_before = {name: cpu_seconds(pid) for name, pid in pids.items()}
    profile = _apiserver_profile(kubectl, n, mode)
    start = time.monotonic()
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(make, range(n)))
    created = time.monotonic() - start
    state = (0, 0, 0)
    while time.monotonic() - start < 180 * max(1.0, n / 1000):
        state = progress.state()
        if state == (n, n, n):
            break
        time.sleep(0.2)
    elapsed = time.monotonic() - start
    progress.stop.set()
    cpu = {name: cpu_seconds(pid) - cpu_before[name] for name, pid in pids.items()}
    requests = request_counts(kubectl) - before
    if profile is not None:
        profile.wait(timeout=120)
    return {"n": n, "create_s": created, "converged_s": elapsed, "state": state,
            "ok": state == (n, n, n), "cpu": cpu, "requests": requests}


def print_costs(r: dict) -> None:
    """Where the time went: CPU seconds per process, and the API requests per Model."""
    print("        CPU s until converged: " + ", ".join(
        f"{name} {seconds:.1f}" for name, seconds in sorted(r["cpu"].items(),
                                                             key=lambda kv: -kv[1])))
    top = [(key, count) for key, count in r["requests"].most_common() if count >= r["n"] / 10]
    print("        API requests per Model: " + ", ".join(
        f"{verb} {resource} {count / r['n']:.2f}" for (verb, resource), count in top))


def main(argv: list[str]) -> int:
    sizes = [int(a) for a in argv] or [100, 300, 1000]
    bin_dir = resolve_bin_dir(BINARIES)
    print(f"{'Models':>7} {'run':>9} {'create (s)':>11} {'converged (s)':>14} {'ms/Model':>9} "
          f"{'peak RSS (MiB)':>15} {'KiB/Model':>10}  ok")
    with tempfile.TemporaryDirectory(prefix="modelops-scale-") as tmp:
        tmp = os.environ.get("MODELOPS_BENCH_KEEP") or tmp
        for n in sizes:
            results = {mode: run(n, bin_dir, Path(tmp), mode) for mode in ("operator", "floor")}
            for mode, r in results.items():
                print(f"{r['n']:>7} {mode:>9} {r['create_s']:>11.1f} {r['converged_s']:>14.1f} "
                      f"{1000 * r['converged_s'] / r['n']:>9.1f} {r['rss_mib']:>15.0f} "
                      f"{1024 * r['rss_mib'] / r['n']:>10.1f}  "
                      f"{'yes' if r['ok'] else 'NO ' + str(r['state'])}  (load average "
                      f"{os.getloadavg()[0]:.1f})", flush=True)
                print_costs(r)
            ratio = results["operator"]["converged_s"] / results["floor"]["converged_s"]
            print(f"        operator / floor at {n}: {ratio:.2f}x the time", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
