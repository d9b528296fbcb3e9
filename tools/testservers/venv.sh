#!/usr/bin/env bash
# A venv, cached outside the work tree, with the real servers the artifact tests start on
# loopback: moto's S3-compatible HTTP server and an MLflow tracking server (plus the mlflow
# client the tests log models with). Kept apart from the project venv so their dependency pins
# (mlflow pulls pandas, sqlalchemy, fastapi, ...) never touch the image's constraints. Rebuilt only
# when this file's pins change. Prints the venv's path last.
#   Settings: MODELOPS_CACHE (default ~/.cache/modelops).
set -euo pipefail
PINS=(
  "moto[server]==5.2.5"
  "mlflow==3.17.2"   # 3.18.0 is listed but its mlflow-skinny is not published
  "scikit-learn==1.9.1"   # the serving image's version (tools/image/constraints.txt)
  "numpy==2.4.6"
  "joblib==1.6.0"
  "skops==0.16.0"
  "boto3==1.44.5"
)
stamp=$(printf '%s\n' "${PINS[@]}" | sha256sum | cut -c1-12)
dir="${MODELOPS_CACHE:-$HOME/.cache/modelops}/testservers-$stamp"
if [ ! -f "$dir/.installed" ]; then
  echo "testservers: creating $dir (moto, mlflow)" >&2
  start=$SECONDS
  rm -rf "$dir"
  python3 -m venv "$dir"
  "$dir/bin/pip" install -q --disable-pip-version-check "${PINS[@]}" >&2
  touch "$dir/.installed"
  echo "testservers: ready in $((SECONDS - start)) s" >&2
fi
echo "$dir"
