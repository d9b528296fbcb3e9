#!/usr/bin/env bash
# Builds everything a kind cluster needs here, with no container registry, into the versioned
# cache bin dir of tools/build-k8s.sh: the Kubernetes binaries with kubeadm, then from pinned Go
# modules (tools/kind/<name>/go.mod) kind, crictl, a CoreDNS with kubeadm's Corefile plugins
# (coredns-kind) and local-path-provisioner; then the node base image (tools/kind/base.sh) and
# the node image (tools/kind/node-image.sh), tagged under modelops.local/ so nothing is pulled.
# Each step is a no-op while its stamp (a hash of its inputs) matches, so a warm run takes about
# a second. Where this host's capability bounding set is incomplete (no CAP_SYS_RESOURCE here),
# Docker refuses every --privileged container, and `kind` in the bin dir is a wrapper that puts
# tools/kind/docker-shim first on kind's PATH; elsewhere it is kind itself.
#
#   tools/build-kind.sh          prints the node image's tag as its last line
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
KUBE_VERSION=$(sed -n 's/^K8S_VERSION=//p' "$here/build-k8s.sh")
BASE_TAG=modelops.local/kind-base:bookworm
NODE_TAG=modelops.local/kind-node:$KUBE_VERSION
start=${EPOCHREALTIME/./}
bin=$(bash "$here/build-k8s.sh" etcd kube-apiserver kube-controller-manager kube-scheduler kubectl \
  kubelet kube-proxy kubeadm 2>/dev/null | tail -n 1)
bash "$here/node/build.sh" >/dev/null  # pause, for the sandbox image
export GOTOOLCHAIN=local CGO_ENABLED=0 GOFLAGS="-trimpath -buildvcs=false"

source_hash() {
  (cd "$1" && find . -name '*.go' -o -name go.mod -o -name go.sum | LC_ALL=C sort \
    | xargs sha256sum | sha256sum | cut -d' ' -f1)
}

# go_binary NAME DIR PACKAGE [LDFLAGS]: build PACKAGE in module DIR as $bin/NAME, unless the
# stamp beside it holds DIR's source hash.
go_binary() {
  local name="$1" dir="$here/kind/$2" package="$3" ldflags="-s -w ${4:-}" stamp hash t=$SECONDS
  stamp="$bin/.$name.sha256"
  hash=$(source_hash "$dir")
  if [ -x "$bin/$name" ] && [ "$(cat "$stamp" 2>/dev/null)" = "$hash" ]; then return 0; fi
  echo "build-kind: building $name ..." >&2
  (cd "$dir" && go build -ldflags "$ldflags" -o "$bin/$name.tmp" "$package")
  mv "$bin/$name.tmp" "$bin/$name"
  echo "$hash" >"$stamp"
  echo "build-kind: $name built in $((SECONDS - t)) s" >&2
}

# full_capabilities: whether the bounding set holds every capability the kernel has, which
# `docker run --privileged` asks for.
full_capabilities() {
  local have last
  have=$(awk '/^CapBnd:/ {print $2}' /proc/self/status)
  last=$(cat /proc/sys/kernel/cap_last_cap)
  [ $((16#$have)) -eq $(((1 << (last + 1)) - 1)) ]
}

# install_kind: $bin/kind is kind itself, or on a host without the full set the wrapper.
install_kind() {
  go_binary kind.bin kind sigs.k8s.io/kind
  if full_capabilities; then
    ln -sfn kind.bin "$bin/kind"
    return
  fi
  install -m 0755 "$here/kind/docker-shim" "$bin/kind-shim/docker" -D
  cat >"$bin/kind.tmp" <<WRAPPER
#!/bin/sh
# kind with a docker shim first on its PATH: this host refuses --privileged (tools/build-kind.sh)
MODELOPS_REAL_DOCKER=\$(command -v docker) PATH="$bin/kind-shim:\$PATH" exec "$bin/kind.bin" "\$@"
WRAPPER
  chmod 0755 "$bin/kind.tmp" && mv "$bin/kind.tmp" "$bin/kind"
}

install_kind
go_binary crictl crictl sigs.k8s.io/cri-tools/cmd/crictl \
  "-X sigs.k8s.io/cri-tools/pkg/version.Version=$(cd "$here/kind/crictl" && go list -m -f '{{.Version}}' sigs.k8s.io/cri-tools)"
go_binary coredns-kind coredns .
go_binary local-path-provisioner local-path github.com/rancher/local-path-provisioner
bash "$here/kind/base.sh" "$bin" "$BASE_TAG"
bash "$here/kind/node-image.sh" "$bin" "$BASE_TAG" "$NODE_TAG" "$KUBE_VERSION"
elapsed=$(((${EPOCHREALTIME/./} - start) / 1000))
printf 'build-kind: ready in %d.%01d s (kind %s, node image %s)\n' $((elapsed / 1000)) \
  $((elapsed % 1000 / 100)) "$bin/kind" "$NODE_TAG" >&2
echo "$NODE_TAG"
