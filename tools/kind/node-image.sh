#!/usr/bin/env bash
# Makes the kind node image locally with `kind build node-image --type file`: a release-style
# server tarball from our own Kubernetes binaries, whose four image archives hold locally made
# images under the names kind and kubeadm ask for (control plane, etcd, CoreDNS, pause,
# local-path-provisioner and its helper, a stand-in for kindnetd, which is not used), so the
# build pulls nothing. Control-plane images are FROM scratch with one static binary; kube-proxy
# and the local-path helper use the base image (iptables, sh). Skipped when the image's label
# holds the hash of its inputs.
#
#   tools/kind/node-image.sh BIN_DIR BASE_TAG TAG KUBE_VERSION
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source-path=SCRIPTDIR
source "$here/../image/lib.sh"
bin_dir=${1:?usage: node-image.sh BIN_DIR BASE_TAG TAG KUBE_VERSION}
base=${2:?} tag=${3:?} version=${4:?}
PAUSE_TAG=modelops/pause:3.10
# kind v0.33.0's names (pkg/build/nodeimage/const_*.go); the build looks for exactly these
KINDNETD=docker.io/kindest/kindnetd:v20260820-69b56db7
PROVISIONER=docker.io/kindest/local-path-provisioner:v20260820-69b56db7
HELPER=docker.io/kindest/local-path-helper:v20260131-7181c60a
BINARIES=(kubeadm kubelet kubectl kube-apiserver kube-controller-manager kube-scheduler kube-proxy
          etcd coredns-kind local-path-provisioner pause)

inputs_hash() {
  { echo "$base $(docker image inspect --format '{{.Id}}' "$base") $version"
    # contents only: a fresh clone elsewhere (CI) must hit the same image
    sha256sum "$0" "$here/archive_names.py" "${BINARIES[@]/#/$bin_dir/}" | cut -d' ' -f1; } \
    | sha256sum | cut -d' ' -f1
}

# scratch_image TAG BINARY [NAME]: one static binary at /usr/local/bin/NAME, FROM scratch.
scratch_image() {
  local tag="$1" binary="$2" name="${3:-$2}" context
  context=$(mktemp -d)
  cp "$bin_dir/$binary" "$context/$name"
  printf 'FROM scratch\nCOPY %s /usr/local/bin/%s\nENV PATH=/usr/local/bin\nENTRYPOINT ["/usr/local/bin/%s"]\n' \
    "$name" "$name" "$name" >"$context/Dockerfile"
  docker_build "$tag" "$context"
}

# docker_build TAG CONTEXT: a quiet legacy build (no BuildKit, no registry), then CONTEXT removed.
docker_build() {
  DOCKER_BUILDKIT=0 docker build --quiet --tag "$1" "$2" >/dev/null 2>"$2/build.log" \
    || { cat "$2/build.log" >&2; die "docker build of $1 failed"; }
  rm -rf "$2"
}

component_images() {
  local images name context
  images=$("$bin_dir/kubeadm" config images list --kubernetes-version "$version")
  for name in kube-apiserver kube-controller-manager kube-scheduler; do
    scratch_image "$(grep "/$name:" <<<"$images")" "$name"
  done
  scratch_image "$(grep '/etcd:' <<<"$images")" etcd
  scratch_image "$(grep '/coredns:' <<<"$images")" coredns-kind coredns
  scratch_image "$PROVISIONER" local-path-provisioner
  context=$(mktemp -d)
  cp "$bin_dir/kube-proxy" "$context/"
  printf 'FROM %s\nCOPY kube-proxy /usr/local/bin/kube-proxy\nENTRYPOINT []\nCMD []\n' "$base" >"$context/Dockerfile"
  docker_build "$(grep '/kube-proxy:' <<<"$images")" "$context"
  docker tag "$base" "$HELPER"
  bash "$here/../node/pause-image.sh" "$bin_dir" "$PAUSE_TAG"
  docker tag "$PAUSE_TAG" "$KINDNETD"
  docker tag "$PAUSE_TAG" "$(sed -n 's/.*sandbox_image = "\(.*\)"/\1/p' "$(kind_files)/etc/containerd/config.toml")"
  grep -v '/pause:' <<<"$images"
}

kind_files() { echo "$(cd "$here/kind" && go list -m -f '{{.Dir}}' sigs.k8s.io/kind)/images/base/files"; }

# server_tarball OUT: kubernetes/{version,server/bin/*} with the images in kind's four archives.
server_tarball() {
  local out="$1" work images side
  work=$(mktemp -d "$MODELOPS_CACHE/kind-node.XXXXXX")
  mkdir -p "$work/kubernetes/server/bin"
  echo "$version" >"$work/kubernetes/version"
  cp "$bin_dir"/{kubeadm,kubelet,kubectl} "$work/kubernetes/server/bin/"
  images=$(component_images)
  for name in kube-apiserver kube-controller-manager kube-scheduler; do
    docker save -o "$work/kubernetes/server/bin/$name.tar" "$(grep "/$name:" <<<"$images")"
  done
  side=$(grep -v -E '/kube-(apiserver|controller-manager|scheduler):' <<<"$images")
  # shellcheck disable=SC2086  # one name per word
  docker save -o "$work/kube-proxy.tar" $side "$PROVISIONER" "$HELPER" "$KINDNETD" \
    "$(sed -n 's/.*sandbox_image = "\(.*\)"/\1/p' "$(kind_files)/etc/containerd/config.toml")"
  python3 "$here/archive_names.py" "$work/kube-proxy.tar" "$work/kubernetes/server/bin/kube-proxy.tar"
  tar -C "$work" -I "$(command -v pigz || echo gzip) -1" -cf "$out" kubernetes
  rm -rf "$work"
}

main() {
  ensure_docker
  local hash tarball kind=("$bin_dir/kind")
  hash=$(inputs_hash)
  if [ "$(docker image inspect --format '{{index .Config.Labels "modelops.io/inputs"}}' "$tag" 2>/dev/null)" = "$hash" ]; then
    return 0
  fi
  tarball="$MODELOPS_CACHE/kind-kubernetes-$version.tar.gz"
  timed kind-tarball server_tarball "$tarball"
  timed kind-node-build "${kind[@]}" build node-image --type file "$tarball" --base-image "$base" \
    --image "$tag-unlabelled" >"$MODELOPS_CACHE/kind-node-build.log" 2>&1 \
    || { tail -n 30 "$MODELOPS_CACHE/kind-node-build.log" >&2; die "kind build node-image failed"; }
  rm -f "$tarball"
  local context
  context=$(mktemp -d)
  printf 'FROM %s\nLABEL modelops.io/inputs=%s\n' "$tag-unlabelled" "$hash" >"$context/Dockerfile"
  docker_build "$tag" "$context"
  docker image rm "$tag-unlabelled" >/dev/null
  log "kind node: built $tag ($(docker image inspect --format '{{.Size}}' "$tag" | numfmt --to=iec))"
}

main
