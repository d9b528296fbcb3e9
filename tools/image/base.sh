#!/usr/bin/env bash
# Make the local Python base image modelops/python-base:3.11 without any container registry.
#
# debootstrap a minimal Debian bookworm with python3.11 (+ venv, ca-certificates) from the same
# mirror the host's apt uses, shape it like python:3.11-slim where our Dockerfile relies on it
# (`python` and `python3` on PATH in /usr/local/bin, C.UTF-8), keep the root filesystem as a
# tarball in the cache (outside the work tree) and `docker import` it. Skips every step whose
# result already exists: the image, then the tarball.
#
# Settings (environment): MODELOPS_BASE_IMAGE (tag, default modelops/python-base:3.11),
# MODELOPS_DEBIAN_MIRROR (default: the host's apt mirror), MODELOPS_DEBIAN_SUITE (bookworm),
# MODELOPS_BASE_REBUILD=1 to rebuild the tarball and the image.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR
source "$(dirname "$0")/lib.sh"

BASE_IMAGE="${MODELOPS_BASE_IMAGE:-modelops/python-base:3.11}"
SUITE="${MODELOPS_DEBIAN_SUITE:-bookworm}"
PACKAGES="python3.11,python3.11-venv,python3-distutils,ca-certificates"
TARBALL="$MODELOPS_CACHE/python-base-$SUITE-py311.tar"

# slim_rootfs DIR: drop what a server image never reads (docs, man pages, locales, apt lists).
slim_rootfs() {
  local root="$1"
  rm -rf "$root"/usr/share/doc/* "$root"/usr/share/man/* "$root"/usr/share/info/* \
    "$root"/usr/share/locale/* "$root"/var/cache/apt/* "$root"/var/lib/apt/lists/* \
    "$root"/var/log/* "$root"/tmp/* "$root"/root/.cache
}

# shape_like_python_slim DIR: the parts of python:3.11-slim the Dockerfile relies on.
shape_like_python_slim() {
  local root="$1"
  ln -sf /usr/bin/python3.11 "$root/usr/local/bin/python3"
  ln -sf /usr/bin/python3.11 "$root/usr/local/bin/python"
  chmod 1777 "$root/tmp"
}

build_tarball() {
  command -v debootstrap >/dev/null || die "debootstrap not found (apt-get install debootstrap)"
  local mirror rootfs
  mirror=$(host_mirror "$SUITE")
  rootfs="$MODELOPS_CACHE/python-base-rootfs.tmp"
  rm -rf "$rootfs"
  mkdir -p "$rootfs"
  log "debootstrap $SUITE from $mirror with $PACKAGES"
  debootstrap --variant=minbase --include="$PACKAGES" "$SUITE" "$rootfs" "$mirror" \
    >"$MODELOPS_CACHE/debootstrap.log" 2>&1 \
    || die "debootstrap failed; see $MODELOPS_CACHE/debootstrap.log"
  slim_rootfs "$rootfs"
  shape_like_python_slim "$rootfs"
  tar --numeric-owner -C "$rootfs" -cf "$TARBALL.tmp" .
  mv "$TARBALL.tmp" "$TARBALL"
  rm -rf "$rootfs"
  log "base tarball: $TARBALL ($(du -h "$TARBALL" | cut -f1))"
}

import_tarball() {
  log "docker import $TARBALL as $BASE_IMAGE"
  docker import \
    --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change 'ENV LANG=C.UTF-8' \
    --change 'CMD ["python3"]' \
    --message "debootstrap $SUITE + $PACKAGES" \
    "$TARBALL" "$BASE_IMAGE" >/dev/null
}

main() {
  ensure_docker
  if [ "${MODELOPS_BASE_REBUILD:-0}" = 1 ]; then
    rm -f "$TARBALL"
    docker image rm -f "$BASE_IMAGE" >/dev/null 2>&1 || true
  fi
  if docker image inspect "$BASE_IMAGE" >/dev/null 2>&1; then
    log "base image $BASE_IMAGE exists; nothing to do"
    return 0
  fi
  mkdir -p "$MODELOPS_CACHE"
  [ -f "$TARBALL" ] || timed base-debootstrap build_tarball
  timed base-import import_tarball
  docker run --rm "$BASE_IMAGE" python -c 'import ssl, venv, sys; print(sys.version)' >/dev/null \
    || die "$BASE_IMAGE cannot run python"
}

main "$@"
