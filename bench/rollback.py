"""Rollback speed and false rollbacks, on the local control plane with real serving processes.

For each configuration — the defaults, and the fastest documented settings — v1 serves, v2
(whose model raises for 25 % of the inputs) rolls out under traffic, and we time the first
failing request to the moment the Service selects v1 again. Then a healthy v2 with 1 % errors
(threshold 5 %) is watched for a number of evaluations and every rollback is counted as false.

    .venv/bin/python bench/rollback.py [--healthy-seconds 60]

Goal (issue 5): under 45 s with defaults, under 15 s at the fastest settings, zero false rollbacks.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from modelops.devcluster.access import ClusterAccess  # noqa: E402
from modelops.devcluster.binaries import resolve_bin_dir  # noqa: E402
from modelops.devcluster.cluster import ControlPlane, ControlPlaneSettings  # noqa: E402
from modelops.devcluster.components import BINARIES  # noqa: E402
from tests.cluster import test_rollback as scenario_kit  # noqa: E402
from tests.cluster.support import wait_for  # noqa: E402

CONFIGS = {
    # the operator's and the CRD's defaults: tick 5 s; interval 15 s, window 2m, 3 breaches, 50 req
    "defaults": ({"tick_seconds": "5"}, {}),
    # the fastest documented settings
    "fastest": ({"tick_seconds": "1"}, {"interval": "1s", "window": "10s",
                                        "consecutiveBreaches": 2, "minRequests": 10}),
}


def _scenario(access, namespace, work, subnet, operator, rollback):
    work.mkdir(parents=True, exist_ok=True)
    scenario_kit.FAST = {**rollback, "errorRateThreshold": 0.05}
    s = scenario_kit.Scenario(access, namespace, work, subnet, **operator)
    s.operator.start()
    return s


def time_to_rollback(access, name: str, work: Path, subnet: str) -> float:
    operator, rollback = CONFIGS[name]
    namespace = f"bench-{name}"
    access.kubectl("create", "namespace", namespace)
    s = _scenario(access, namespace, work / name, subnet, operator, rollback)
    try:
        s.apply("1", bake="1s")
        s.serve("1")
        with scenario_kit.Traffic(s.cluster, namespace, s.ips, bad_share=0.25) as traffic:
            wait_for(lambda: s.status().get("lastGoodVersion") == "1", timeout=120, what="v1")
            s.apply("2", bake="30m")
            v2 = s.serve("2")
            wait_for(lambda: s.cluster.service_revision(namespace, "iris") == v2, what="v2")
            wait_for(lambda: traffic.first_error_at, what="a failing request")
            back = [r for r, ip in s.ips.items() if ip.endswith(".2")][0]
            wait_for(lambda: s.cluster.service_revision(namespace, "iris") == back,
                     timeout=300, interval=0.05, what="the rollback")
            return time.monotonic() - traffic.first_error_at
    finally:
        s.close()


def false_rollbacks(access, work: Path, subnet: str, seconds: float) -> tuple[int, int]:
    operator, rollback = CONFIGS["fastest"]
    namespace = "bench-healthy"
    access.kubectl("create", "namespace", namespace)
    s = _scenario(access, namespace, work / "healthy", subnet, operator, rollback)
    try:
        s.apply("1", bake="1s")
        s.serve("1")
        wait_for(lambda: s.status().get("lastGoodVersion") == "1", timeout=120, what="v1")
        s.apply("2", bake="30m")
        v2 = s.serve("2")
        evaluations, rollbacks = set(), 0
        with scenario_kit.Traffic(s.cluster, namespace, s.ips, bad_share=0.01):
            wait_for(lambda: s.cluster.service_revision(namespace, "iris") == v2, what="v2")
            end = time.monotonic() + seconds
            while time.monotonic() < end:
                status = s.status()
                analysis = status.get("analysis") or {}
                if analysis.get("revision") == v2 and analysis.get("result") != "Inconclusive":
                    evaluations.add(analysis.get("lastEvaluated"))
                rollbacks += bool(status.get("rollback"))
                if status.get("rollback"):
                    break
                time.sleep(0.25)
        return len(evaluations), rollbacks
    finally:
        s.close()


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--healthy-seconds", type=float, default=60)
    args = parser.parse_args(argv)
    bin_dir = resolve_bin_dir(BINARIES)
    with tempfile.TemporaryDirectory(prefix="modelops-rollback-") as tmp:
        work = Path(tmp)
        plane = ControlPlane(ControlPlaneSettings(bin_dir=bin_dir, work_dir=work / "cp"))
        plane.start()
        try:
            access = ClusterAccess(plane.kubeconfig, bin_dir, plane)
            access.kubectl("apply", "-k", str(ROOT / "crds"))
            access.kubectl("wait", "--for=condition=Established", "crd/models.modelops.io")
            rows = [(name, time_to_rollback(access, name, work, f"127.78.{i}"))
                    for i, name in enumerate(CONFIGS, start=1)]
            evaluations, rollbacks = false_rollbacks(access, work, "127.78.9",
                                                     args.healthy_seconds)
        finally:
            plane.stop()
    print("| settings | first failing request -> Service back on v1 |")
    print("|---|---|")
    for name, seconds in rows:
        print(f"| {name} | {seconds:.1f} s |")
    print(f"\nhealthy v2 with 1 % errors (threshold 5 %): {rollbacks} false rollbacks in "
          f"{evaluations} evaluations over {args.healthy_seconds:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
