#!/bin/sh
# Run INSIDE the image build: pip install into /opt/modelops, offline when wheels are present.
#
# `deps` installs pyproject.toml's [project] dependencies under constraints.txt; `package`
# builds the modelops wheel, checks it against the deps and stages it under /opt/package-root.
# When tools/image/wheels/ holds wheels (made on the host by wheels.sh) pip uses only them
# (--no-index); without them, or with the build argument WHEELS=off, pip uses the package index.
set -eu

STEP="${1:?usage: install-python-deps.sh deps|package}"
HERE="$(cd "$(dirname "$0")" && pwd)"
PIP="/opt/modelops/bin/python -m pip"
INDEX_ARGS=""
if [ "${WHEELS:-auto}" != off ] && ls "$HERE"/wheels/*.whl >/dev/null 2>&1; then
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
    # Build one wheel; install it here to check it against the deps, and once more under
    # /opt/package-root (a DESTDIR) so the runtime image can copy just the package's files.
    # shellcheck disable=SC2086
    $PIP wheel $INDEX_ARGS --no-deps --wheel-dir /tmp/dist .
    $PIP install --no-index --no-deps /tmp/dist/modelops-*.whl
    $PIP check
    $PIP install --no-index --no-deps --ignore-installed --root /opt/package-root /tmp/dist/modelops-*.whl
    ;;
  *)
    echo "install-python-deps: unknown step '$STEP' (expected deps or package)" >&2
    exit 2
    ;;
esac
