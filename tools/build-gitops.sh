#!/usr/bin/env bash
# Builds the pinned GitOps tools the ecosystem tests run, from Go modules, into a cache outside
# the work tree keyed by tool version and wrapper hash. A no-op for every tool already cached.
#
#   tools/build-gitops.sh [tool ...]      (default: kstatus argocd-health)
#
# Tools (wrapper modules under tools/gitops/, each with its go.sum committed):
#   kstatus         sigs.k8s.io/cli-utils kstatus          local Go (GOTOOLCHAIN=local)
#   argocd-health   Argo CD's health assessment             GOTOOLCHAIN=go1.27.3 (argo-cd v3.6.x
#                                                           declares go 1.27.0; the Go command
#                                                           fetches that toolchain from the proxy)
#   argocd          Argo CD's single binary, with argocd-application-controller and
#                   argocd-repo-server linked to it (it picks the component by the name it is
#                   run under); GOTOOLCHAIN=go1.27.3 as for argocd-health
#   kustomize-controller,
#   source-controller  Flux v1.9.6 (local Go; v1.10.x needs modules the proxy refuses)
# Prints a bin directory as its last line: the tool's own cache directory when one tool is
# asked for (safe when worktrees pin different wrappers), else $cache/gitops/bin, where every
# tool asked for is linked.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
CLI_UTILS_VERSION=v0.37.2
ARGOCD_VERSION=v3.6.1
ARGOCD_GOTOOLCHAIN=go1.27.3
FLUX_VERSION=v1.9.6
cache=${MODELOPS_CACHE:-$HOME/.cache/modelops}
bin="$cache/gitops/bin"
mkdir -p "$bin"
tools=("$@")
[ ${#tools[@]} -gt 0 ] || tools=(kstatus argocd-health)

version_of() {
  case $1 in
    kstatus) echo "$CLI_UTILS_VERSION" ;;
    argocd-health|argocd) echo "$ARGOCD_VERSION" ;;
    kustomize-controller|source-controller) echo "$FLUX_VERSION" ;;
    *) echo "build-gitops: unknown tool $1" >&2; exit 2 ;;
  esac
}
# The main package: our own wrapper, or the upstream module's root (a `tool` line in go.mod).
package_of() {
  case $1 in
    kustomize-controller|source-controller) echo "github.com/fluxcd/$1" ;;
    argocd) echo github.com/argoproj/argo-cd/v3/cmd ;;
    *) echo . ;;
  esac
}
toolchain_of() {
  case $1 in argocd-health|argocd) echo "$ARGOCD_GOTOOLCHAIN" ;; *) echo local ;; esac
}
# Argo CD's version variables, as its Makefile sets them (`argocd version` reports them).
ldflags_of() {
  local flags="-s -w"
  if [ "$1" = argocd ]; then
    local pkg=github.com/argoproj/argo-cd/v3/common
    flags+=" -X $pkg.version=${ARGOCD_VERSION#v} -X $pkg.buildDate=1970-01-01T00:00:00Z"
    flags+=" -X $pkg.gitTreeState=clean -X $pkg.kubectlVersion=v0.37.0"
  fi
  echo "$flags"
}
# Names the binary is also run under (symlinks next to it in its cache directory).
aliases_of() {
  case $1 in argocd) echo argocd-application-controller argocd-repo-server ;; esac
}
# A change to the wrapper (main.go, go.mod, go.sum) gives a new cache entry.
key_of() {
  local sum
  local d="$here/gitops/$1"
  sum=$(cat "$d/go.mod" "$d/go.sum" $(find "$d" -name '*.go' | sort) | sha256sum)
  echo "$1-$(version_of "$1")-${sum:0:12}"
}

for t in "${tools[@]}"; do  # refuse unknown names before touching the cache
  version_of "$t" >/dev/null
done

export CGO_ENABLED=0 GOFLAGS="-trimpath -buildvcs=false -mod=readonly"
start=$SECONDS
built=()
for t in "${tools[@]}"; do
  dir="$cache/gitops/$(key_of "$t")"
  if [ ! -x "$dir/$t" ]; then
    echo "build-gitops: building $t $(version_of "$t") (GOTOOLCHAIN=$(toolchain_of "$t")) ..." >&2
    mkdir -p "$dir"
    s=$SECONDS
    (cd "$here/gitops/$t" && GOTOOLCHAIN=$(toolchain_of "$t") \
      go build -ldflags "$(ldflags_of "$t")" -o "$dir/$t.tmp" "$(package_of "$t")")
    for alias in $(aliases_of "$t"); do ln -sfn "$t" "$dir/$alias"; done
    mv "$dir/$t.tmp" "$dir/$t"
    echo "build-gitops: $t built in $((SECONDS - s)) s" >&2
    built+=("$t")
  fi
  ln -sfn "$dir/$t" "$bin/$t"
done
if [ ${#built[@]} -eq 0 ]; then
  echo "build-gitops: cache warm (${tools[*]})" >&2
else
  echo "build-gitops: built ${built[*]} in $((SECONDS - start)) s" >&2
fi
if [ ${#tools[@]} -eq 1 ]; then echo "$dir"; else echo "$bin"; fi
