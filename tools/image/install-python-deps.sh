#!/bin/sh
# Run INSIDE the image build: pip install into /opt/modelops, offline when wheels are present.
#
# `deps` installs pyproject.toml's [project] dependencies under constraints.txt; `package`
# installs the modelops package itself (no deps). When tools/image/wheels/ holds wheels (CI,
# made by wheels.sh on the host) pip uses only them (--no-index); without it pip uses PyPI.
set -eu

STEP="${1:?usage: install-python-deps.sh deps|package}"
HERE="$(cd "$(dirname "$0")" && pwd)"
PIP="/opt/modelops/bin/python -m pip"
INDEX_ARGS=""
if ls "$HERE"/wheels/*.whl >/dev/null 2>&1; then
  INDEX_ARGS="--no-index --find-links $HERE/wheels"
  echo "install-python-deps: offline, from $HERE/wheels"
else
  echo "install-python-deps: online, from the package index"
fi

case "$STEP" in
  deps)
    python - <<'PY' >/tmp/requirements.txt
import tomllib
print("\n".join(tomllib.load(open("pyproject.toml", "rb"))["project"]["dependencies"]))
PY
    # shellcheck disable=SC2086  # INDEX_ARGS is a list of words on purpose
    $PIP install $INDEX_ARGS --constraint "$HERE/constraints.txt" --requirement /tmp/requirements.txt
    ;;
  package)
    # shellcheck disable=SC2086
    $PIP install $INDEX_ARGS --no-deps .
    $PIP check
    ;;
  *)
    echo "install-python-deps: unknown step '$STEP' (expected deps or package)" >&2
    exit 2
    ;;
esac
