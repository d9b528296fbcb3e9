"""A real Kubernetes control plane on loopback, built from the official components.

etcd, kube-apiserver, kube-controller-manager and kube-scheduler run as local processes with a
self-made CA and an admin client certificate, the way controller-runtime's envtest does. It is
both the `tests/cluster` harness (see tests/cluster/conftest.py) and the local cluster behind
`python -m modelops.devcluster up|down|status`. Modules: `pki` and `kubeconfig` (pure builders),
`components` (pure: paths, ports, argv), `process` (start/probe/stop one process), `state`
(state.json), `cluster` (`ControlPlane`), `binaries` (find or build them), `access` (kubectl and
the Python client for a cluster). With `up --node` a real node joins (the tests/e2e tier):
`node` (`Node`: containerd, kubelet, kube-proxy, CoreDNS), `node_config` and `node_plan` (pure:
files, processes, API objects), `node_net` (bridge, routes, guard rules), `node_images` (Docker
builds, containerd imports) and `node_deploy` (operator and samples, as a user installs them).
"""
