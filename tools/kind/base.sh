#!/usr/bin/env bash
# Makes kind's node base image locally, with no registry: a debootstrap'd Debian bookworm with
# systemd, Debian's containerd 1.6, runc and CNI plugins, shaped like kind's own base image
# (images/base/Dockerfile of the pinned kind module, whose files/ it copies in), plus crictl,
# a bridge CNI conflist (kindnetd cannot be built here), the `ctr info` wrapper containerd 1.6
# needs and an entrypoint that makes cgroup v1 controllers writable. The root filesystem is kept
# as a tarball in the cache; the image is labelled with the hash of its inputs and skipped when
# that label matches.
#
#   tools/kind/base.sh BIN_DIR TAG          BIN_DIR holds crictl (tools/build-kind.sh)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source-path=SCRIPTDIR
source "$here/../image/lib.sh"
bin_dir=${1:?usage: base.sh BIN_DIR TAG}
tag=${2:?usage: base.sh BIN_DIR TAG}
SUITE=bookworm
PACKAGES=systemd,systemd-sysv,dbus,containerd,runc,containernetworking-plugins,conntrack,iptables,nftables,iproute2,ethtool,util-linux,mount,kmod,libseccomp2,pigz,e2fsprogs,bash,ca-certificates,curl,jq,procps
kind_files="$(cd "$here/kind" && go list -m -f '{{.Dir}}' sigs.k8s.io/kind)/images/base/files"

inputs_hash() {
  # contents only: a fresh clone elsewhere (CI) must hit the same image
  { echo "$SUITE $PACKAGES"; sha256sum "$0" "$here"/files/* "$bin_dir/crictl" | cut -d' ' -f1
    (cd "$kind_files" && find . -type f | LC_ALL=C sort | xargs sha256sum); } | sha256sum | cut -d' ' -f1
}

# kind_layout ROOT: what kind's Dockerfile does on top of the packages (its RUN steps).
kind_layout() {
  local root="$1"
  cp -r "$kind_files"/usr/local/bin/. "$root/usr/local/bin/"
  mkdir -p "$root/kind" && cp -r "$kind_files/kind/bin" "$root/kind/"
  cp -r "$kind_files"/etc/. "$root/etc/"
  chmod -R u+w "$root/kind" "$root/etc" "$root/usr/local/bin"
  chmod 0755 "$root"/usr/local/bin/* "$root"/kind/bin/*
  find "$root/lib/systemd/system/sysinit.target.wants/" -name systemd-tmpfiles-setup.service -delete
  rm -f "$root"/lib/systemd/system/multi-user.target.wants/* "$root"/etc/systemd/system/*.wants/* \
    "$root"/lib/systemd/system/local-fs.target.wants/* "$root"/lib/systemd/system/sockets.target.wants/*udev* \
    "$root"/lib/systemd/system/sockets.target.wants/*initctl* "$root"/lib/systemd/system/basic.target.wants/*
  echo "ReadKMsg=no" >>"$root/etc/systemd/journald.conf"
  ln -sf /usr/lib/systemd/systemd "$root/sbin/init"
  chroot "$root" systemctl enable kubelet.service containerd.service undo-mount-hacks.service >/dev/null 2>&1
  chroot "$root" systemctl mask systemd-binfmt.service >/dev/null 2>&1
  mkdir -p "$root/etc/kubernetes/manifests"
}

# debian_layout ROOT: Debian's binaries where kind expects its own builds, plus our additions.
debian_layout() {
  local root="$1"
  ln -sf /usr/bin/containerd "$root/usr/local/bin/containerd"
  ln -sf /usr/bin/containerd-shim-runc-v2 "$root/usr/local/bin/containerd-shim-runc-v2"
  ln -sf /usr/sbin/runc "$root/usr/local/sbin/runc"
  mkdir -p "$root/opt/cni" && ln -sfn /usr/lib/cni "$root/opt/cni/bin"
  install -m 0755 "$here/files/ctr" "$root/usr/local/bin/ctr"
  mv "$root/usr/local/bin/entrypoint" "$root/usr/local/bin/entrypoint.kind"
  install -m 0755 "$here/files/entrypoint" "$root/usr/local/bin/entrypoint"
  install -m 0755 "$bin_dir/crictl" "$root/usr/local/bin/crictl"
  mkdir -p "$root/etc/cni/net.d" && install -m 0644 "$here/files/10-bridge.conflist" "$root/etc/cni/net.d/"
  chroot "$root" /usr/bin/ctr oci spec \
    | jq '.hooks.createContainer[.hooks.createContainer| length] |= . + {"path": "/kind/bin/mount-product-files.sh"}' \
    | jq 'del(.process.rlimits)' >"$root/etc/containerd/cri-base.json"
}

build_tarball() {
  local tarball="$1" rootfs="$MODELOPS_CACHE/kind-base-rootfs.tmp"
  rm -rf "$rootfs" && mkdir -p "$rootfs"
  log "kind base: debootstrap $SUITE"
  debootstrap --variant=minbase --include="$PACKAGES" "$SUITE" "$rootfs" "$(host_mirror "$SUITE")" \
    >"$MODELOPS_CACHE/kind-debootstrap.log" 2>&1 \
    || die "debootstrap failed; see $MODELOPS_CACHE/kind-debootstrap.log"
  kind_layout "$rootfs"
  debian_layout "$rootfs"
  rm -rf "$rootfs"/usr/share/doc/* "$rootfs"/usr/share/man/* "$rootfs"/usr/share/locale/* \
    "$rootfs"/var/cache/apt/* "$rootfs"/var/lib/apt/lists/* "$rootfs"/var/log/*.log
  tar --numeric-owner -C "$rootfs" -cf "$tarball.tmp" . && mv "$tarball.tmp" "$tarball"
  rm -rf "$rootfs"
}

main() {
  ensure_docker
  local hash tarball context
  hash=$(inputs_hash)
  if [ "$(docker image inspect --format '{{index .Config.Labels "modelops.io/inputs"}}' "$tag" 2>/dev/null)" = "$hash" ]; then
    return 0
  fi
  tarball="$MODELOPS_CACHE/kind-base-${hash:0:12}.tar"
  [ -f "$tarball" ] || timed kind-debootstrap build_tarball "$tarball"
  context=$(mktemp -d)
  docker import "$tarball" "$tag-rootfs" >/dev/null
  cat >"$context/Dockerfile" <<DOCKERFILE
FROM $tag-rootfs
ENV container=docker
LABEL modelops.io/inputs=$hash
STOPSIGNAL SIGRTMIN+3
ENTRYPOINT ["/usr/local/bin/entrypoint", "/sbin/init"]
DOCKERFILE
  DOCKER_BUILDKIT=0 docker build --quiet --tag "$tag" "$context" >/dev/null 2>"$context/build.log" \
    || { cat "$context/build.log" >&2; die "docker build of $tag failed"; }
  docker image rm "$tag-rootfs" >/dev/null
  rm -rf "$context"
  find "$MODELOPS_CACHE" -maxdepth 1 -name 'kind-base-*.tar' ! -name "${tarball##*/}" -delete
  log "kind base: built $tag"
}

main
