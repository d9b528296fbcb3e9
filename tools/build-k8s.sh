#!/usr/bin/env bash
# Builds the pinned Kubernetes control-plane binaries and etcd from Go modules into a cache
# outside the work tree, keyed by version. A no-op for every binary already in the cache.
#
#   tools/build-k8s.sh [component ...]     (default: the control plane; e2e adds kubelet kube-proxy)
#
# Prints the bin directory as its last line.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
K8S_VERSION=v1.36.3
ETCD_VERSION=v3.6.16
cache=${MODELOPS_CACHE:-$HOME/.cache/modelops}
bin="$cache/k8s-$K8S_VERSION-etcd-$ETCD_VERSION/bin"
mkdir -p "$bin"
components=("$@")
[ ${#components[@]} -gt 0 ] || components=(etcd kube-apiserver kube-controller-manager kube-scheduler kubectl)

export GOTOOLCHAIN=local CGO_ENABLED=0 GOFLAGS="-trimpath -buildvcs=false"
minor=${K8S_VERSION#v1.}; minor=${minor%%.*}
ldflags="-s -w"
for pkg in k8s.io/client-go/pkg/version k8s.io/component-base/version; do
  ldflags+=" -X $pkg.gitVersion=$K8S_VERSION -X $pkg.gitMajor=1 -X $pkg.gitMinor=$minor"
  ldflags+=" -X $pkg.gitTreeState=clean -X $pkg.buildDate=1970-01-01T00:00:00Z"
done

missing=()
for c in "${components[@]}"; do
  [ -x "$bin/$c" ] || missing+=("$c")
done
if [ ${#missing[@]} -eq 0 ]; then
  echo "build-k8s: cache warm ($bin)" >&2
  echo "$bin"; exit 0
fi

start=$SECONDS
for c in "${missing[@]}"; do
  echo "build-k8s: building $c ..." >&2
  t=$SECONDS
  if [ "$c" = etcd ]; then
    (cd "$here/etcd" && go build -ldflags "-s -w" -o "$bin/etcd.tmp" .)
  else
    (cd "$here/k8s" && go build -ldflags "$ldflags" -o "$bin/$c.tmp" "./cmd/$c")
  fi
  mv "$bin/$c.tmp" "$bin/$c"
  echo "build-k8s: $c built in $((SECONDS - t)) s" >&2
done
echo "build-k8s: built ${missing[*]} in $((SECONDS - start)) s" >&2
echo "$bin"
