"""Operator scale: create N Models (100, 300, 1000) on the local control plane and measure the
time until every Model has its Deployment, its Service and a status that observed its
generation, and the operator's peak RSS. A fresh control plane and operator per N.

    .venv/bin/python bench/scale.py [N ...]

Goal (issue 4): 1000 Models converged in under 60 s with under 300 MiB RSS.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import kubernetes

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from modelops import contract  # noqa: E402
from modelops.devcluster.binaries import resolve_bin_dir  # noqa: E402
from modelops.devcluster.cluster import ControlPlane, ControlPlaneSettings  # noqa: E402
from modelops.devcluster.components import BINARIES  # noqa: E402
from tests.cluster.support import OperatorProcess  # noqa: E402
from tests.factories import model_spec  # noqa: E402

NAMESPACE = "scale"


def peak_rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def converged(api: kubernetes.client.ApiClient, n: int) -> tuple[int, int, int]:
    custom = kubernetes.client.CustomObjectsApi(api)
    models = custom.list_namespaced_custom_object(contract.API_GROUP, contract.API_VERSION,
                                                  NAMESPACE, contract.MODEL_PLURAL)["items"]
    observed = sum(1 for m in models if (m.get("status") or {}).get("observedGeneration")
                   == m["metadata"]["generation"])
    selector = f"{contract.LABEL_MANAGED_BY}={contract.MANAGED_BY}"
    deployments = len(kubernetes.client.AppsV1Api(api).list_namespaced_deployment(
        NAMESPACE, label_selector=selector).items)
    services = len(kubernetes.client.CoreV1Api(api).list_namespaced_service(
        NAMESPACE, label_selector=selector).items)
    return observed, deployments, services


def run(n: int, bin_dir: Path, work: Path) -> dict:
    plane = ControlPlane(ControlPlaneSettings(bin_dir=bin_dir, work_dir=work / f"cp-{n}"))
    plane.start()
    operator = None
    try:
        kubectl = [str(bin_dir / "kubectl"), f"--kubeconfig={plane.kubeconfig}"]
        import subprocess
        subprocess.run([*kubectl, "apply", "-k", str(ROOT / "crds")], check=True,
                       capture_output=True)
        subprocess.run([*kubectl, "wait", "--for=condition=Established", "--timeout=60s",
                        "crd/models.modelops.io"], check=True, capture_output=True)
        subprocess.run([*kubectl, "create", "namespace", NAMESPACE], check=True,
                       capture_output=True)
        operator = OperatorProcess(plane.kubeconfig, work / f"operator-{n}.log",
                                   tick_seconds="5").start()
        api = kubernetes.config.new_client_from_config(str(plane.kubeconfig))
        custom = kubernetes.client.CustomObjectsApi(api)
        spec = model_spec(replicas=1)

        def create(i: int) -> None:
            body = {"apiVersion": contract.API_GROUP_VERSION, "kind": contract.MODEL_KIND,
                    "metadata": {"name": f"m{i:04d}"}, "spec": spec}
            custom.create_namespaced_custom_object(contract.API_GROUP, contract.API_VERSION,
                                                   NAMESPACE, contract.MODEL_PLURAL, body)

        start = time.monotonic()
        with ThreadPoolExecutor(8) as pool:
            list(pool.map(create, range(n)))
        created = time.monotonic() - start
        state = (0, 0, 0)
        while time.monotonic() - start < 180:
            state = converged(api, n)
            if state == (n, n, n):
                break
            time.sleep(0.5)
        elapsed = time.monotonic() - start
        return {"n": n, "create_s": created, "converged_s": elapsed, "state": state,
                "ok": state == (n, n, n), "rss_mib": peak_rss_mib(operator.process.pid)}
    finally:
        if operator:
            operator.stop()
        plane.stop()


def main(argv: list[str]) -> int:
    sizes = [int(a) for a in argv] or [100, 300, 1000]
    bin_dir = resolve_bin_dir(BINARIES)
    print(f"{'Models':>7} {'create (s)':>11} {'converged (s)':>14} {'peak RSS (MiB)':>15}  ok")
    with tempfile.TemporaryDirectory(prefix="modelops-scale-") as tmp:
        tmp = os.environ.get("MODELOPS_BENCH_KEEP") or tmp
        for n in sizes:
            r = run(n, bin_dir, Path(tmp))
            print(f"{r['n']:>7} {r['create_s']:>11.1f} {r['converged_s']:>14.1f} "
                  f"{r['rss_mib']:>15.0f}  {'yes' if r['ok'] else 'NO ' + str(r['state'])}",
                  flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
