#!/usr/bin/env bash
# Build the modelops images: modelops/serving:dev and modelops/operator:dev (tags configurable).
#
# Steps, each timed and each skipped when its result is already there: make sure a Docker engine
# answers (start dockerd if not), make the local base image (base.sh) unless the registry base
# python:3.11-slim is asked for, download wheels on the host (wheels.sh) in offline mode, then
# `docker build` the serving and operator targets. Build logs go to the cache directory.
#
# Settings (environment):
#   MODELOPS_BASE_IMAGE    modelops/python-base:3.11 (made here) or python:3.11-slim (pulled)
#   MODELOPS_OFFLINE       1: install from host-made wheels; 0: from PyPI inside the build.
#                          Default: 1 with the local base, 0 with python:3.11-slim.
#   MODELOPS_SERVING_TAG   default modelops/serving:dev
#   MODELOPS_OPERATOR_TAG  default modelops/operator:dev
set -euo pipefail
# shellcheck source-path=SCRIPTDIR
source "$(dirname "$0")/lib.sh"

LOCAL_BASE="modelops/python-base:3.11"
BASE_IMAGE="${MODELOPS_BASE_IMAGE:-$LOCAL_BASE}"
SERVING_TAG="${MODELOPS_SERVING_TAG:-modelops/serving:dev}"
OPERATOR_TAG="${MODELOPS_OPERATOR_TAG:-modelops/operator:dev}"
if [ "$BASE_IMAGE" = "$LOCAL_BASE" ]; then OFFLINE="${MODELOPS_OFFLINE:-1}"; else OFFLINE="${MODELOPS_OFFLINE:-0}"; fi

# build_target TARGET TAG: docker build one Dockerfile target; show the log's tail on failure.
build_target() {
  local target="$1" tag="$2" wheels=off logfile="$MODELOPS_CACHE/build-$1.log"
  [ "$OFFLINE" = 1 ] && wheels=auto
  if ! docker build --force-rm --target "$target" --tag "$tag" \
      --build-arg BASE_IMAGE="$BASE_IMAGE" --build-arg WHEELS="$wheels" \
      --file "$REPO_ROOT/Dockerfile" "$REPO_ROOT" >"$logfile" 2>&1; then
    tail -n 40 "$logfile" >&2
    die "docker build --target $target failed; full log: $logfile"
  fi
  log "built $tag ($(docker image inspect --format '{{.Size}}' "$tag" | numfmt --to=iec))"
}

main() {
  local start=${EPOCHREALTIME/./}
  mkdir -p "$MODELOPS_CACHE"
  timed docker-engine ensure_docker
  if [ "$BASE_IMAGE" = "$LOCAL_BASE" ]; then
    timed base-image "$IMAGE_TOOLS_DIR/base.sh"
  fi
  if [ "$OFFLINE" = 1 ]; then
    timed wheels "$IMAGE_TOOLS_DIR/wheels.sh"
  fi
  log "base $BASE_IMAGE, $([ "$OFFLINE" = 1 ] && echo offline || echo online) install"
  timed build-serving build_target serving "$SERVING_TAG"
  timed build-operator build_target operator "$OPERATOR_TAG"
  log "total $(((${EPOCHREALTIME/./} - start) / 1000000))s"
}

main "$@"
