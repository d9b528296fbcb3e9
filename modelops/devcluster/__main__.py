"""`python -m modelops.devcluster up|down|status [--dir DIR] [--node] [--deploy]`: the local
cluster for `make`.

`up` builds the binaries if they are missing (or uses $MODELOPS_K8S_BIN), starts the control
plane detached so it outlives this command, prints progress to stderr and
`KUBECONFIG=<path>` as its last stdout line. `--node` also starts a node on this host
(containerd, kubelet, kube-proxy, CoreDNS: modelops.devcluster.node) so pods really run;
`--deploy` (implies --node) then builds and imports the images, installs the operator with
`kubectl apply -k deploy/` and applies deploy/samples in the `demo` namespace. It is a no-op
when the cluster in DIR is already healthy; otherwise it stops whatever survives of the recorded
one and starts afresh (new certificates, empty etcd). `down` stops the processes recorded in
DIR (the node first, tearing its pods and network down); `status` shows them with their memory.
`--kind` makes a kind cluster instead (modelops.devcluster.kind_cluster, kubeconfig in
DIR/kind) and deploys the same way; `--deploy` alone picks kind wherever kind can run and the
host node elsewhere ($MODELOPS_LOCAL_CLUSTER=kind|node overrides). `down` also deletes the kind
cluster. DIR defaults to $MODELOPS_CACHE/devcluster (~/.cache/modelops/devcluster), outside the
work tree.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

from modelops.contract import DEV_CLUSTER_DIRNAME, DEV_SAMPLES_NAMESPACE, ENV_CACHE
from modelops.devcluster.access import ClusterAccess, KubectlError
from modelops.devcluster.binaries import BinariesError, resolve_bin_dir
from modelops.devcluster.cluster import (
    ControlPlane,
    ControlPlaneError,
    ControlPlaneSettings,
    ProcessStatus,
)
from modelops.devcluster.components import BINARIES
from modelops.devcluster.kind import (KindError, KindSettings, guard_service_range, kind_problems,
                                      local_clusters, node_container)
from modelops.devcluster.kind_cluster import KindCluster
from modelops.devcluster.node import NODE_BUILD_SCRIPT, NODE_DIRNAME, Node, NodeError, NodeSettings
from modelops.devcluster.node_deploy import apply_samples, install_operator, node_image_loader
from modelops.devcluster.node_images import ImageError
from modelops.devcluster.node_plan import NODE_BINARIES
from modelops.devcluster.state import StateError

MIB = 1024 * 1024


def default_work_dir(env: Mapping[str, str]) -> Path:
    """$MODELOPS_CACHE/devcluster, with the cache defaulting to ~/.cache/modelops."""
    cache = env.get(ENV_CACHE) or str(Path.home() / ".cache" / "modelops")
    return Path(cache).expanduser() / DEV_CLUSTER_DIRNAME


def up(work_dir: Path, node: bool = False, deploy: bool = False) -> int:
    """Start (or find running) the control plane in `work_dir`, with a node if asked."""
    node = node or deploy
    if _healthy_plane(work_dir) and (not node or _healthy_node(work_dir)):
        _say(f"already running in {work_dir}")
        plane = ControlPlane.attach(work_dir)
    else:
        _stop_leftovers(work_dir)
        plane = _start(work_dir, node)
    if deploy:
        began = time.monotonic()
        access = ClusterAccess(plane.kubeconfig, plane.settings.bin_dir, plane)
        socket = Node.attach(work_dir / NODE_DIRNAME).layout.containerd_socket
        install_operator(access, node_image_loader(socket), progress=_say)
        apply_samples(access, DEV_SAMPLES_NAMESPACE)
        _say(f"operator and samples ({DEV_SAMPLES_NAMESPACE}) in {time.monotonic() - began:.1f} s")
    print(f"KUBECONFIG={plane.kubeconfig}")
    return 0


def kind_cluster(work_dir: Path) -> tuple[KindCluster, Path]:
    """The kind cluster recorded under `work_dir` and the bin dir with its kubectl."""
    bin_dir = resolve_bin_dir(BINARIES, progress=_say)
    return KindCluster(KindSettings.from_env(bin_dir, os.environ), work_dir / "kind"), bin_dir


def up_kind(cluster: KindCluster, bin_dir: Path, problems: list[str]) -> int:
    """A kind cluster (reused when it answers), images, operator and samples; `problems` are
    why kind cannot run here (`kind_problems`)."""
    if problems:
        raise KindError("kind cannot run here: " + "; ".join(problems))
    began = time.monotonic()
    created = cluster.create()
    guard_service_range(node_container(cluster.settings.name))
    _say(f"kind cluster {cluster.settings.name} {'created' if created else 'already running'} "
         f"in {time.monotonic() - began:.1f} s (node image {cluster.settings.node_image})")
    began = time.monotonic()
    access = ClusterAccess(cluster.kubeconfig, bin_dir)
    install_operator(access, cluster.load, progress=_say)
    apply_samples(access, DEV_SAMPLES_NAMESPACE)
    _say(f"operator and samples ({DEV_SAMPLES_NAMESPACE}) in {time.monotonic() - began:.1f} s")
    print(f"KUBECONFIG={cluster.kubeconfig}")
    return 0


def _start(work_dir: Path, node: bool) -> ControlPlane:
    bin_dir = resolve_bin_dir(BINARIES, progress=_say)
    if node:
        bin_dir = resolve_bin_dir(NODE_BINARIES, progress=_say, build_script=NODE_BUILD_SCRIPT)
    _say(f"starting the control plane in {work_dir} (binaries: {bin_dir})")
    began = time.monotonic()
    settings = ControlPlaneSettings(bin_dir=bin_dir, work_dir=work_dir, serve_node=node)
    plane = ControlPlane(settings).start()
    _say(f"control plane ready in {time.monotonic() - began:.1f} s")
    if node:
        try:
            Node(NodeSettings(bin_dir, work_dir / NODE_DIRNAME)).start(plane)
        except NodeError:
            plane.stop()
            raise
        _say(f"node ready in {time.monotonic() - began:.1f} s (with the control plane)")
    _print_status(plane)
    return plane


def down(work_dir: Path) -> int:
    """Delete the kind cluster if there is one; stop the processes recorded in `work_dir`, the
    node first."""
    kind_kubeconfig = work_dir / "kind" / "kubeconfig"
    if kind_kubeconfig.is_file():
        cluster, _ = kind_cluster(work_dir)
        cluster.delete()
        kind_kubeconfig.unlink()
        _say(f"kind cluster {cluster.settings.name}: deleted")
        if not (work_dir / "state.json").exists():
            return 0
    try:
        node = Node.attach(work_dir / NODE_DIRNAME)
    except StateError:
        node = None
    if node is not None:
        for name, outcome in node.stop().items():
            _say(f"{name}: {outcome}")
        node.layout.state_file.unlink(missing_ok=True)
    try:
        plane = ControlPlane.attach(work_dir)
    except StateError as missing:
        _say(f"nothing to stop: {missing}")
        return 0
    for name, outcome in plane.stop().items():
        _say(f"{name}: {outcome}")
    plane.layout.state_file.unlink(missing_ok=True)
    return 0


def status(work_dir: Path) -> int:
    """Print each recorded process; exit code 0 only when all are healthy."""
    try:
        plane = ControlPlane.attach(work_dir)
    except StateError as missing:
        _say(f"not running: {missing}")
        return 1
    rows = _print_status(plane)
    print(f"KUBECONFIG={plane.kubeconfig}")
    return 0 if rows and all(row.healthy for row in rows) else 1


def _healthy_node(work_dir: Path) -> bool:
    try:
        rows = Node.attach(work_dir / NODE_DIRNAME).status()
    except StateError:
        return False
    return bool(rows) and all(row.healthy for row in rows)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m modelops.devcluster", description=__doc__)
    parser.add_argument("command", choices=("up", "down", "status"))
    parser.add_argument(
        "--dir", type=Path, default=default_work_dir(os.environ), help="work dir (%(default)s)"
    )
    parser.add_argument("--node", action="store_true", help="up: also start a node on this host")
    parser.add_argument(
        "--deploy", action="store_true",
        help="up: a cluster with pods (kind where it can run, else the host node) + images + "
             "operator + samples"
    )
    parser.add_argument("--kind", action="store_true", help="up: kind + images + operator + samples")
    args = parser.parse_args(argv)
    work_dir = args.dir.expanduser().resolve()
    try:
        if args.command == "up" and (args.kind or args.deploy and not args.node):
            # `--deploy` alone goes to kind where it can run, unless the environment says node
            cluster, bin_dir = kind_cluster(work_dir)
            problems = kind_problems(cluster.settings)
            if args.kind or "kind" in local_clusters(os.environ, problems):
                return up_kind(cluster, bin_dir, problems)
        if args.command == "up":
            return up(work_dir, node=args.node, deploy=args.deploy)
        return {"down": down, "status": status}[args.command](work_dir)
    except (BinariesError, ControlPlaneError, NodeError, ImageError, KubectlError,
            StateError, KindError, ValueError) as failure:
        _say(f"error: {failure}")
        return 1


def _healthy_plane(work_dir: Path) -> bool:
    try:
        rows = ControlPlane.attach(work_dir).status()
    except StateError:
        return False
    return bool(rows) and all(row.healthy for row in rows)


def _stop_leftovers(work_dir: Path) -> None:
    # A half-dead earlier cluster in the same dir: stop the survivors it recorded before reuse.
    try:
        node_outcomes = Node.attach(work_dir / NODE_DIRNAME).stop()
    except StateError:
        node_outcomes = {}
    for name, outcome in node_outcomes.items():
        _say(f"node {name}: {outcome}")
    try:
        outcomes = ControlPlane.attach(work_dir).stop()
    except StateError:
        return
    for name, outcome in outcomes.items():
        if outcome != "not running":
            _say(f"stopped leftover {name}: {outcome}")


def _print_status(plane: ControlPlane) -> list[ProcessStatus]:
    rows = plane.status()
    try:
        rows += Node.attach(plane.layout.work_dir / NODE_DIRNAME).status()
    except StateError:
        pass
    for row in rows:
        rss = f"{row.rss_bytes / MIB:.0f} MiB" if row.rss_bytes is not None else "-"
        state = "healthy" if row.healthy else ("running, unhealthy" if row.running else "stopped")
        _say(f"{row.name:<24} pid {row.pid:<8} {state:<20} rss {rss}")
    return rows


def _say(message: str) -> None:
    print(f"devcluster: {message}", file=sys.stderr, flush=True)


if __name__ == "__main__":
    sys.exit(main())
