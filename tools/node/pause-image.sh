#!/usr/bin/env bash
# Makes the pod sandbox ("pause") image locally, with no registry: the static pause binary that
# tools/node/build.sh built, alone in a FROM-scratch image, running as nobody. Skipped when the
# Docker image already holds exactly that binary (its sha256 is an image label).
#
#   tools/node/pause-image.sh BIN_DIR TAG       e.g. ~/.cache/.../bin modelops/pause:3.10
set -euo pipefail
bin_dir=${1:?usage: pause-image.sh BIN_DIR TAG}
tag=${2:?usage: pause-image.sh BIN_DIR TAG}
binary="$bin_dir/pause"
[ -x "$binary" ] || { echo "pause-image: $binary is missing; run tools/node/build.sh" >&2; exit 1; }
docker info >/dev/null 2>&1 || { echo "pause-image: no Docker engine answers (docker info failed)" >&2; exit 1; }

sum=$(sha256sum "$binary" | cut -d' ' -f1)
have=$(docker image inspect --format '{{index .Config.Labels "modelops.io/pause-sha256"}}' "$tag" 2>/dev/null || true)
if [ "$have" = "$sum" ]; then
  echo "pause-image: $tag is current" >&2
  exit 0
fi
context=$(mktemp -d)
trap 'rm -rf "$context"' EXIT
cp "$binary" "$context/pause"
cat >"$context/Dockerfile" <<DOCKERFILE
FROM scratch
COPY pause /pause
USER 65535:65535
LABEL modelops.io/pause-sha256=$sum
ENTRYPOINT ["/pause"]
DOCKERFILE
DOCKER_BUILDKIT=0 docker build --quiet --tag "$tag" "$context" >/dev/null 2>"$context/build.log" \
  || { cat "$context/build.log" >&2; echo "pause-image: docker build failed" >&2; exit 1; }
echo "pause-image: built $tag" >&2
