"""Train the sample models and pin them in the sample manifests.

Trains three small scikit-learn models deterministically (fixed random_state, no downloads):
`iris` (LogisticRegression on sklearn's bundled iris data), `house-price` (Ridge on synthetic
make_regression data, 8 features) and `diagnosis` (a classifier on 8 synthetic features plus
the house-price prediction as a 9th column: the second step of the `features+previous`
pipeline). It writes them with joblib into deploy/samples/artifacts/, prints each sha256, and
rewrites the `sha256:` pinned next to each artifact's configMap:// URI in deploy/samples/*.yaml.

    python examples/train.py            # train, write artifacts, update the manifests
    python examples/train.py --check    # only verify that the manifests pin the files on disk
    python examples/train.py --out DIR  # train into DIR, leave the manifests alone

Artifacts must be trained with the scikit-learn version of the serving image (the server
refuses a version mismatch), so retrain after changing it.
"""

from __future__ import annotations

import argparse
import hashlib
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import yaml
from sklearn.datasets import load_iris, make_classification, make_regression
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from threadpoolctl import threadpool_limits

REPO = Path(__file__).resolve().parent.parent
SAMPLES_DIR = REPO / "deploy" / "samples"
ARTIFACTS_DIR = SAMPLES_DIR / "artifacts"
CONFIGMAP = "sample-artifacts"  # the configMapGenerator name in deploy/samples/kustomization.yaml
N_FEATURES = 8  # what a pipeline request sends: house-price reads these, diagnosis gets one more


@dataclass(frozen=True)
class Trained:
    """One trained sample: its Model name, artifact file name, estimator and a training score."""

    name: str
    filename: str
    estimator: Any
    score: str


def train_iris() -> Trained:
    features, labels = load_iris(return_X_y=True)
    model = LogisticRegression(max_iter=1000).fit(features, labels)
    return Trained("iris", "iris.joblib", model, f"accuracy {model.score(features, labels):.3f}")


def train_house_price() -> Trained:
    features, price = make_regression(
        n_samples=400, n_features=N_FEATURES, n_informative=6, noise=15.0, random_state=7
    )
    model = Ridge(alpha=1.0).fit(features, price)
    return Trained("house-price", "house-price.joblib", model, f"R^2 {model.score(features, price):.3f}")


def train_diagnosis(house_price: Any) -> Trained:
    """A classifier over the 8 features plus house-price's prediction, as the pipeline feeds it."""
    features, labels = make_classification(
        n_samples=400, n_features=N_FEATURES, n_informative=5, n_clusters_per_class=1,
        class_sep=1.5, random_state=11,
    )
    with_price = np.column_stack([features, house_price.predict(features)])
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000))
    model.fit(with_price, labels)
    return Trained("diagnosis", "diagnosis.joblib", model, f"accuracy {model.score(with_price, labels):.3f}")


def train_all() -> list[Trained]:
    # One BLAS thread: with several, float sums depend on how work is split, so a loaded machine
    # could train different bytes than a quiet one.
    with threadpool_limits(limits=1):
        house_price = train_house_price()
        return [train_iris(), house_price, train_diagnosis(house_price.estimator)]


def sha256_of(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def write_artifacts(trained: list[Trained], out_dir: Path) -> dict[str, str]:
    """Dump each model with joblib into out_dir; return {filename: sha256}."""
    out_dir.mkdir(parents=True, exist_ok=True)
    digests = {}
    for sample in trained:
        path = out_dir / sample.filename
        joblib.dump(sample.estimator, path)
        digests[sample.filename] = sha256_of(path)
    return digests


def manifest_pins(samples_dir: Path) -> list[tuple[Path, str, str, str]]:
    """(manifest, Model name, artifact key, pinned sha256) of every Model using the samples ConfigMap."""
    pins = []
    for manifest in sorted(samples_dir.glob("*.yaml")):
        for doc in yaml.safe_load_all(manifest.read_text()):
            if not doc or doc.get("kind") != "Model":
                continue
            artifact = doc["spec"]["artifact"]
            prefix = f"configMap://{CONFIGMAP}/"
            if artifact["uri"].startswith(prefix):
                key = artifact["uri"][len(prefix):]
                pins.append((manifest, doc["metadata"]["name"], key, artifact.get("sha256", "")))
    return pins


def check_pins(samples_dir: Path, artifacts_dir: Path) -> list[str]:
    """Problems with the manifests' pins against the artifact files; empty when all match."""
    problems = []
    pins = manifest_pins(samples_dir)
    if not pins:
        problems.append(f"no Model in {samples_dir} uses configMap://{CONFIGMAP}/<key>")
    for manifest, model, key, pinned in pins:
        path = artifacts_dir / key
        if not path.is_file():
            problems.append(f"{manifest.name}: Model {model} uses {key}, which is not in {artifacts_dir}")
        elif (actual := sha256_of(path)) != pinned:
            problems.append(f"{manifest.name}: Model {model} pins sha256 {pinned or '(none)'} but {key} is {actual}")
    return problems


def update_pins(samples_dir: Path, digests: dict[str, str]) -> list[str]:
    """Rewrite the `sha256:` line right after each samples ConfigMap URI; return the files changed."""
    changed = []
    for manifest in sorted(samples_dir.glob("*.yaml")):
        text = manifest.read_text()
        for key, digest in digests.items():
            pin = re.compile(rf"(uri: configMap://{CONFIGMAP}/{re.escape(key)}\s*\n\s*sha256: )\S+")
            text = pin.sub(lambda match: match.group(1) + digest, text)
        if text != manifest.read_text():
            manifest.write_text(text)
            changed.append(manifest.name)
    return changed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="only verify the manifests' sha256 pins")
    parser.add_argument("--out", type=Path, help="train into this directory; leave the manifests alone")
    args = parser.parse_args(argv)
    if args.check:
        problems = check_pins(SAMPLES_DIR, ARTIFACTS_DIR)
        for problem in problems:
            print(f"MISMATCH {problem}", file=sys.stderr)
        print("sample manifests pin the artifact files" if not problems else f"{len(problems)} mismatch(es)")
        return 1 if problems else 0
    trained = train_all()
    digests = write_artifacts(trained, args.out or ARTIFACTS_DIR)
    for sample in trained:
        size = ((args.out or ARTIFACTS_DIR) / sample.filename).stat().st_size
        print(f"{sample.name:12} {sample.filename:20} {size:7} B  {sample.score:16} sha256 {digests[sample.filename]}")
    if args.out is None:
        for name in update_pins(SAMPLES_DIR, digests):
            print(f"updated sha256 pins in deploy/samples/{name}")
        problems = check_pins(SAMPLES_DIR, ARTIFACTS_DIR)
        for problem in problems:
            print(f"MISMATCH {problem}", file=sys.stderr)
        return 1 if problems else 0
    return 0


if __name__ == "__main__":
    sys.exit(main())
