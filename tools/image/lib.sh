# shellcheck shell=bash disable=SC2034  # sourced; its variables are used by the callers
# Shared helpers for the image scripts in tools/image (sourced, never run).
#
# Logging with elapsed time, the cache directory outside the work tree, and ensure_docker, which
# starts Debian's dockerd in the background when no engine answers and waits until it does.

MODELOPS_CACHE="${MODELOPS_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/modelops}"
IMAGE_TOOLS_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO_ROOT="$(cd "$IMAGE_TOOLS_DIR/../.." && pwd)"
DOCKERD_WAIT_SECONDS="${DOCKERD_WAIT_SECONDS:-60}"

log() { printf '[image] %s\n' "$*" >&2; }
die() { printf '[image] error: %s\n' "$*" >&2; exit 1; }

# timed LABEL CMD...: run CMD and print how long it took under LABEL.
timed() {
  local label="$1" start elapsed_ms
  shift
  start=${EPOCHREALTIME/./}
  "$@"
  elapsed_ms=$(((${EPOCHREALTIME/./} - start) / 1000))
  printf '[image] time %-14s %4d.%01ds\n' "$label" $((elapsed_ms / 1000)) $((elapsed_ms % 1000 / 100)) >&2
}

docker_answers() { docker info >/dev/null 2>&1; }

# ensure_docker: use the running engine, or start dockerd (root only) and wait for it.
ensure_docker() {
  command -v docker >/dev/null || die "docker CLI not found (apt-get install docker.io)"
  docker_answers && return 0
  command -v dockerd >/dev/null || die "no Docker engine answers and dockerd is not installed"
  [ "$(id -u)" = 0 ] || die "no Docker engine answers; start dockerd as root"
  mkdir -p "$MODELOPS_CACHE"
  log "starting dockerd (log: $MODELOPS_CACHE/dockerd.log)"
  setsid nohup dockerd >"$MODELOPS_CACHE/dockerd.log" 2>&1 </dev/null &
  echo $! >"$MODELOPS_CACHE/dockerd.pid"
  local waited=0
  until docker_answers; do
    kill -0 "$(cat "$MODELOPS_CACHE/dockerd.pid")" 2>/dev/null \
      || die "dockerd exited; see $MODELOPS_CACHE/dockerd.log"
    [ "$waited" -lt "$DOCKERD_WAIT_SECONDS" ] || die "dockerd did not answer in ${DOCKERD_WAIT_SECONDS}s"
    sleep 1
    waited=$((waited + 1))
  done
  log "dockerd is up (pid $(cat "$MODELOPS_CACHE/dockerd.pid"))"
}

# host_mirror SUITE: $MODELOPS_DEBIAN_MIRROR, else the first Debian archive URI the host's apt
# is configured with.
host_mirror() {
  local suite="$1" uri
  [ -n "${MODELOPS_DEBIAN_MIRROR:-}" ] && { echo "$MODELOPS_DEBIAN_MIRROR"; return; }
  uri=$(cat /etc/apt/sources.list.d/*.sources 2>/dev/null \
    | awk '/^URIs:/ && $2 ~ /debian\/?$/ && $2 !~ /security/ {print $2; exit}')
  if [ -z "$uri" ] && [ -f /etc/apt/sources.list ]; then
    uri=$(awk '$1 == "deb" && $3 == "'"$suite"'" {print $2; exit}' /etc/apt/sources.list)
  fi
  echo "${uri:-http://deb.debian.org/debian}"
}
