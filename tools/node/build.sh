#!/usr/bin/env bash
# Builds what the dev node needs beyond kubelet and kube-proxy, from Go modules, into the same
# versioned cache bin dir as tools/build-k8s.sh: coredns (tools/coredns, pinned CoreDNS with only
# the plugins the node uses), pause (the pod sandbox's process) and node-cri-reset (tears pods
# down through CRI on `down`), both from tools/node. A no-op while the cache matches the sources:
# a hash of each module's go.mod, go.sum and *.go files is kept beside the binaries.
#
#   tools/node/build.sh          prints the bin directory as its last line
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
bin=$(bash "$repo/tools/build-k8s.sh" kubelet kube-proxy | tail -n 1)
export GOTOOLCHAIN=local CGO_ENABLED=0 GOFLAGS="-trimpath -buildvcs=false"

# source_hash DIR: one hash over the module's definition and Go sources.
source_hash() {
  (cd "$1" && find . -name '*.go' -o -name go.mod -o -name go.sum | LC_ALL=C sort \
    | xargs sha256sum | sha256sum | cut -d' ' -f1)
}

# build_module DIR STAMP OUT...: build DIR's commands unless STAMP holds its source hash.
build_module() {
  local dir="$1" stamp="$bin/.$2.sha256" hash start=$SECONDS
  shift 2
  hash=$(source_hash "$dir")
  local out missing=0
  for out in "$@"; do [ -x "$bin/$out" ] || missing=1; done
  if [ "$missing" = 0 ] && [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$hash" ]; then
    return 0
  fi
  echo "node-build: building $* from ${dir#"$repo"/} ..." >&2
  local tmp
  tmp=$(mktemp -d "$bin/.build.XXXXXX")
  if [ -d "$dir/cmd" ]; then
    (cd "$dir" && go build -ldflags "-s -w" -o "$tmp/" ./cmd/...)
  else
    (cd "$dir" && go build -ldflags "-s -w" -o "$tmp/$1" .)
  fi
  for out in "$@"; do mv "$tmp/$out" "$bin/$out"; done
  rm -rf "$tmp"
  echo "$hash" >"$stamp"
  echo "node-build: built $* in $((SECONDS - start)) s" >&2
}

build_module "$repo/tools/coredns" coredns coredns
build_module "$here" node-tools pause node-cri-reset
echo "$bin"
