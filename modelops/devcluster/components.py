"""Where the control plane keeps its files and how each of its processes is invoked. Pure.

`Layout` names every path under the work dir; `Ports` holds the loopback ports picked at start;
the `*_component` functions turn them into `Component`s (argv + health URL). The flags follow
envtest and kwokctl, adjusted for a machine with no default route: the apiserver advertises
127.0.0.1 and runs no endpoint reconciler. Health checks use /readyz for the apiserver (it
waits for the post-start hooks such as RBAC bootstrap) and /healthz for the others.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from modelops.devcluster.process import Component

LOOPBACK = "127.0.0.1"
ALL_ADDRESSES = "0.0.0.0"  # the apiserver's bind address when a node's pods must reach it
SERVICE_CIDR = "10.0.0.0/20"  # room for a few thousand Services (the scale benchmark)
SERVICE_IP = "10.0.0.1"  # first address of SERVICE_CIDR: the `kubernetes` Service
HEALTH_PATHS = "/healthz,/readyz,/livez,/metrics"
CONTROL_PLANE = ("etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler")
BINARIES = (*CONTROL_PLANE, "kubectl")


@dataclass(frozen=True)
class Layout:
    """Every file the control plane writes, under one work dir."""

    work_dir: Path

    @property
    def pki_dir(self) -> Path:
        return self.work_dir / "pki"

    @property
    def etcd_data(self) -> Path:
        return self.work_dir / "etcd"

    @property
    def logs_dir(self) -> Path:
        return self.work_dir / "logs"

    @property
    def kubeconfig(self) -> Path:
        return self.work_dir / "kubeconfig"

    @property
    def state_file(self) -> Path:
        return self.work_dir / "state.json"

    def pki(self, name: str) -> Path:
        return self.pki_dir / name

    def log(self, component: str) -> Path:
        return self.logs_dir / f"{component}.log"


@dataclass(frozen=True)
class Ports:
    """The loopback ports of one control plane."""

    etcd_client: int
    etcd_peer: int
    apiserver: int
    controller_manager: int
    scheduler: int

    @property
    def etcd_url(self) -> str:
        return f"http://{LOOPBACK}:{self.etcd_client}"

    @property
    def apiserver_url(self) -> str:
        return f"https://{LOOPBACK}:{self.apiserver}"


def etcd_component(bin_dir: Path, layout: Layout, ports: Ports, *, no_fsync: bool) -> Component:
    """A single-member etcd on loopback; `no_fsync` when the binary supports --unsafe-no-fsync."""
    peer = f"http://{LOOPBACK}:{ports.etcd_peer}"
    argv = [
        str(bin_dir / "etcd"),
        "--name=default",
        f"--data-dir={layout.etcd_data}",
        f"--listen-client-urls={ports.etcd_url}",
        f"--advertise-client-urls={ports.etcd_url}",
        f"--listen-peer-urls={peer}",
        f"--initial-advertise-peer-urls={peer}",
        f"--initial-cluster=default={peer}",
        "--log-level=warn",
    ]
    if no_fsync:
        argv.append("--unsafe-no-fsync=true")  # throwaway data: durability buys nothing here
    return Component("etcd", tuple(argv), f"{ports.etcd_url}/health")


def apiserver_component(
    bin_dir: Path, layout: Layout, ports: Ports, *, with_controllers: bool, serve_node: bool = False
) -> Component:
    """kube-apiserver on loopback with client-certificate auth and RBAC.

    `serve_node`: a kubelet joins (modelops.devcluster.node), so the apiserver also listens
    beyond loopback (pods reach it through the `kubernetes` Service, and Service endpoints may
    not be loopback addresses) and presents a client certificate to the kubelet for logs,
    exec and port-forward.
    """
    argv = [
        str(bin_dir / "kube-apiserver"),
        f"--etcd-servers={ports.etcd_url}",
        f"--bind-address={ALL_ADDRESSES if serve_node else LOOPBACK}",
        f"--secure-port={ports.apiserver}",
        # Without these the apiserver looks for a default route to find its own address.
        f"--advertise-address={LOOPBACK}",
        "--endpoint-reconciler-type=none",
        f"--tls-cert-file={layout.pki('apiserver.crt')}",
        f"--tls-private-key-file={layout.pki('apiserver.key')}",
        f"--client-ca-file={layout.pki('client-ca.crt')}",
        f"--service-account-issuer={ports.apiserver_url}/",
        f"--service-account-key-file={layout.pki('sa.pub')}",
        f"--service-account-signing-key-file={layout.pki('sa.key')}",
        f"--service-cluster-ip-range={SERVICE_CIDR}",
        "--authorization-mode=RBAC",
        "--allow-privileged=true",
        # Close open watches on SIGTERM; otherwise shutdown waits up to 60 s for clients to hang up.
        "--shutdown-watch-termination-grace-period=2s",
        # As OpenShift does: an owner reference with blockOwnerDeletion needs `update` on the
        # owner's finalizers (tests/cluster/test_operator_rbac.py runs the operator's own role).
        "--enable-admission-plugins=OwnerReferencesPermissionEnforcement",
    ]
    if serve_node:
        argv += [
            f"--kubelet-client-certificate={layout.pki('apiserver-kubelet-client.crt')}",
            f"--kubelet-client-key={layout.pki('apiserver-kubelet-client.key')}",
            "--kubelet-preferred-address-types=InternalIP",
        ]
    if not with_controllers:
        # Nobody would create the `default` ServiceAccount, and the plugin refuses Pods without it.
        argv.append("--disable-admission-plugins=ServiceAccount")
    return Component(
        "kube-apiserver",
        tuple(argv),
        f"{ports.apiserver_url}/readyz",
        ca_file=layout.pki("serving-ca.crt"),
        client_cert=(layout.pki("admin.crt"), layout.pki("admin.key")),
    )


def controller_manager_component(bin_dir: Path, layout: Layout, ports: Ports) -> Component:
    """kube-controller-manager with all default controllers (GC, Deployment, ServiceAccount...)."""
    argv = [
        str(bin_dir / "kube-controller-manager"),
        *_client_flags(layout, ports.controller_manager),
        f"--root-ca-file={layout.pki('serving-ca.crt')}",
        f"--service-account-private-key-file={layout.pki('sa.key')}",
    ]
    return Component("kube-controller-manager", tuple(argv), _health(ports.controller_manager))


def scheduler_component(bin_dir: Path, layout: Layout, ports: Ports) -> Component:
    """kube-scheduler (binds Pods once a node exists; until then they stay Pending)."""
    argv = [str(bin_dir / "kube-scheduler"), *_client_flags(layout, ports.scheduler)]
    return Component("kube-scheduler", tuple(argv), _health(ports.scheduler))


def _client_flags(layout: Layout, port: int) -> list[str]:
    kubeconfig = layout.kubeconfig
    return [
        f"--kubeconfig={kubeconfig}",
        f"--authentication-kubeconfig={kubeconfig}",
        f"--authorization-kubeconfig={kubeconfig}",
        # The apiserver has no front-proxy CA to publish; looking for one only fills the log.
        "--authentication-skip-lookup=true",
        f"--bind-address={LOOPBACK}",
        f"--secure-port={port}",
        f"--authorization-always-allow-paths={HEALTH_PATHS}",
        # One instance: waiting to acquire a lease only delays start.
        "--leader-elect=false",
    ]


def _health(port: int) -> str:
    return f"https://{LOOPBACK}:{port}/healthz"
