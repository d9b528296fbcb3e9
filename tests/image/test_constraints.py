"""tools/image/constraints.txt pins what the venv runs, so host-trained models load in the image.

scikit-learn refuses (or warns about) a model saved by another version, so the image must carry
exactly the venv's versions. These checks need no Docker: every runtime dependency of
pyproject.toml is pinned, and every pin equals the version installed where the tests run.
"""

from __future__ import annotations

import re
import tomllib
from importlib import metadata
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
CONSTRAINTS = REPO / "tools" / "image" / "constraints.txt"
REPIN = "tools/image/pin.sh"


def normalize(name: str) -> str:
    """PEP 503 form of a distribution name."""
    return re.sub(r"[-_.]+", "-", name).lower()


def read_pins(text: str) -> dict[str, str]:
    pins = {}
    for number, line in enumerate(text.splitlines(), start=1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        name, separator, version = line.partition("==")
        assert separator and name and version, f"constraints.txt:{number}: not name==version: {line}"
        pins[normalize(name)] = version
    return pins


@pytest.fixture(scope="module")
def pins() -> dict[str, str]:
    return read_pins(CONSTRAINTS.read_text())


def test_every_runtime_dependency_is_pinned(pins) -> None:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    names = {normalize(re.split(r"[\s<>=!~;\[]", dep, maxsplit=1)[0]) for dep in project["dependencies"]}
    assert sorted(names - pins.keys()) == [], f"unpinned; run {REPIN}"


def test_scikit_learn_pin_is_the_version_models_are_trained_with(pins) -> None:
    import sklearn

    assert pins["scikit-learn"] == sklearn.__version__, f"run {REPIN}"


def test_every_pin_matches_the_installed_version(pins) -> None:
    installed = {normalize(dist.metadata["Name"]): dist.version for dist in metadata.distributions()}
    drift = {name: (pinned, installed[name]) for name, pinned in pins.items()
             if name in installed and installed[name] != pinned}
    assert drift == {}, f"(pinned, installed) differ; run {REPIN} or reinstall with -c {CONSTRAINTS}"
