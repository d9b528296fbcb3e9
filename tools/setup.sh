#!/usr/bin/env bash
# Everything a fresh machine needs, idempotent: Debian packages, the Python venv with the
# project and its test tools, and the pinned Kubernetes/etcd binaries (cached outside the tree).
#
#   tools/setup.sh [--node]     --node also installs/builds what the e2e node needs
#   MODELOPS_LOCAL_CLUSTER=node  skips kind (built by default wherever a Docker engine answers or
#                                dockerd can be started)
set -euo pipefail
cd "$(dirname "$0")/.."
node=${1:-}

# redis-server: Argo CD in tests/gitops; wrk: make bench-serving
packages=(docker.io prometheus debootstrap redis-server wrk)
[ "$node" = --node ] && packages+=(containerd runc containernetworking-plugins iptables conntrack)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing Debian packages: ${missing[*]}" >&2
  sudo_cmd=""; [ "$(id -u)" = 0 ] || sudo_cmd="sudo"
  $sudo_cmd apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

if [ ! -x .venv/bin/python ] || [ pyproject.toml -nt .venv/.installed ] || [ tools/image/constraints.txt -nt .venv/.installed ]; then
  echo "setup: creating .venv and installing modelops with its test extras" >&2
  python3 -m venv .venv
  .venv/bin/pip install -q --upgrade pip
  .venv/bin/pip install -q -e '.[test]' -c tools/image/constraints.txt
  touch .venv/.installed
fi

# the loopback S3 (moto) and MLflow servers the artifact-source tests start (own venv, cached)
bash tools/testservers/venv.sh >/dev/null

components=()
[ "$node" = --node ] && components=(etcd kube-apiserver kube-controller-manager kube-scheduler kubectl kubelet kube-proxy)
bash tools/build-k8s.sh "${components[@]}" >/dev/null
bash tools/build-gitops.sh >/dev/null  # kstatus and Argo CD health for tests/*/ecosystem
# kind and its node image, built here (tools/build-kind.sh): `make run` and tests/e2e use kind
# wherever Docker runs; MODELOPS_LOCAL_CLUSTER=node keeps to the host node and skips this
if [ "${MODELOPS_LOCAL_CLUSTER:-auto}" != node ]; then
  if (source tools/image/lib.sh && ensure_docker); then
    bash tools/build-kind.sh >/dev/null
  else
    echo "setup: no Docker engine, so no kind: make run and tests/e2e use the host node" >&2
  fi
fi
echo "setup: ready" >&2
