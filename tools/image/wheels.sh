#!/usr/bin/env bash
# Download, on the host, every wheel the image needs, so `docker build` can install offline.
#
# The build container has neither the package proxy's CA nor pip's host config, so CI fetches
# the wheels here (host pip, its proxy and cache) for the image's Python (CPython 3.11,
# manylinux x86_64) into tools/image/wheels/, which the Dockerfile then installs from with
# `--no-index`. What is fetched: the [project] dependencies and [build-system] requires of
# pyproject.toml, under tools/image/constraints.txt. A stamp of those inputs makes a warm run a
# no-op. The directory ignores itself in git. Settings: MODELOPS_VENV (host pip's venv).
set -euo pipefail
# shellcheck source-path=SCRIPTDIR
source "$(dirname "$0")/lib.sh"

VENV="${MODELOPS_VENV:-$REPO_ROOT/.venv}"
WHEELS="$IMAGE_TOOLS_DIR/wheels"
CONSTRAINTS="$IMAGE_TOOLS_DIR/constraints.txt"

# pyproject_list KEY: one requirement a line from pyproject.toml (project.dependencies or
# build-system.requires).
pyproject_list() {
  "$VENV/bin/python" - "$REPO_ROOT/pyproject.toml" "$1" <<'PY'
import sys, tomllib
table = tomllib.load(open(sys.argv[1], "rb"))
section, key = sys.argv[2].split(".")
print("\n".join(table[section][key]))
PY
}

# platform_args: pip download's target tags for the image's interpreter and glibc (bookworm 2.36).
platform_args() {
  local minor
  for minor in $(seq 36 -1 17); do printf -- '--platform manylinux_2_%s_x86_64 ' "$minor"; done
  printf -- '--platform manylinux2014_x86_64 --platform manylinux2010_x86_64 '
  printf -- '--platform manylinux1_x86_64 --python-version 3.11 --implementation cp '
  printf -- '--only-binary=:all:'
}

inputs_stamp() {
  { cat "$CONSTRAINTS"; pyproject_list project.dependencies; pyproject_list build-system.requires
    platform_args; } | sha256sum | cut -d' ' -f1
}

download() {
  local tmp="$WHEELS.tmp"
  rm -rf "$tmp"
  mkdir -p "$tmp"
  pyproject_list project.dependencies >"$tmp/.requirements.txt"
  pyproject_list build-system.requires >"$tmp/.build-requirements.txt"
  # shellcheck disable=SC2046  # platform_args is a list of words on purpose
  "$VENV/bin/python" -m pip download --quiet --disable-pip-version-check --dest "$tmp" \
    $(platform_args) --constraint "$CONSTRAINTS" \
    --requirement "$tmp/.requirements.txt" --requirement "$tmp/.build-requirements.txt"
  printf '*\n' >"$tmp/.gitignore"
  rm -rf "$WHEELS"
  mv "$tmp" "$WHEELS"
}

wheel_count() { find "$WHEELS" -maxdepth 1 -name '*.whl' | wc -l; }

main() {
  [ -x "$VENV/bin/python" ] || die "no venv at $VENV (host pip is needed to fetch wheels)"
  local stamp
  stamp=$(inputs_stamp)
  if [ -f "$WHEELS/.stamp" ] && [ "$(cat "$WHEELS/.stamp")" = "$stamp" ]; then
    log "wheels up to date ($(wheel_count) in $WHEELS)"
    return 0
  fi
  timed wheels-download download
  echo "$stamp" >"$WHEELS/.stamp"
  log "wheels: $(wheel_count) files, $(du -sh "$WHEELS" | cut -f1) in $WHEELS"
}

main "$@"
