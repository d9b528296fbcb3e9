"""Find the control-plane binaries: $MODELOPS_K8S_BIN, or the cache that tools/build-k8s.sh fills.

When no bin dir is given, the repo's build script runs (a no-op when its versioned cache is
warm) and its last stdout line names the bin dir. Build progress is forwarded line by line to a
callback; a failed or impossible build raises `BinariesError` with the reason and the tail of
the build output, so callers can report it instead of skipping.
"""

from __future__ import annotations

import os
import re
import subprocess
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path

from modelops.contract import ENV_K8S_BIN

BUILD_SCRIPT = Path(__file__).resolve().parents[2] / "tools" / "build-k8s.sh"
_TAIL_LINES = 30


class BinariesError(RuntimeError):
    """The binaries are missing and cannot be built; the message says why."""


def resolve_bin_dir(
    names: Iterable[str],
    env: Mapping[str, str] = os.environ,
    progress: Callable[[str], None] = lambda line: None,
    build_script: Path = BUILD_SCRIPT,
) -> Path:
    """A directory holding every executable in `names`, building them first if needed."""
    names = tuple(names)
    given = env.get(ENV_K8S_BIN)
    if given:
        bin_dir = Path(given).expanduser()
        _require(bin_dir, names, f"${ENV_K8S_BIN}={given}")
        return bin_dir
    bin_dir = build(names, build_script, progress)
    _require(bin_dir, names, f"the output of {build_script}")
    return bin_dir


def pinned_k8s_version(build_script: Path = BUILD_SCRIPT) -> str:
    """The Kubernetes version the build script pins (its K8S_VERSION= line)."""
    match = re.search(r"^K8S_VERSION=(v\d+\.\d+\.\d+)$", build_script.read_text(), re.MULTILINE)
    if match is None:
        raise BinariesError(f"{build_script}: no K8S_VERSION=vX.Y.Z line")
    return match.group(1)


def missing_binaries(bin_dir: Path, names: Iterable[str]) -> list[str]:
    """The names in `names` that are not executable files in `bin_dir`."""
    return [n for n in names if not os.access(bin_dir / n, os.X_OK) or not (bin_dir / n).is_file()]


def build(names: tuple[str, ...], build_script: Path, progress: Callable[[str], None]) -> Path:
    """Run the build script for `names` and return the bin dir it prints last."""
    if not build_script.is_file():
        raise BinariesError(
            f"cannot build the control plane: {build_script} is missing (not a source checkout?); "
            f"set ${ENV_K8S_BIN} to a directory with {', '.join(names)}"
        )
    last_lines: deque[str] = deque(maxlen=_TAIL_LINES)
    with subprocess.Popen(
        ["bash", str(build_script), *names],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    ) as proc:
        assert proc.stdout is not None
        for line in proc.stdout:
            last_lines.append(line.rstrip("\n"))
            progress(line.rstrip("\n"))
        code = proc.wait()
    if code != 0 or not last_lines:
        output = "\n".join(last_lines)
        raise BinariesError(f"{build_script} exited with code {code}; last output:\n{output}")
    return Path(last_lines[-1].strip())


def _require(bin_dir: Path, names: tuple[str, ...], source: str) -> None:
    missing = missing_binaries(bin_dir, names)
    if missing:
        raise BinariesError(f"{source}: {bin_dir} lacks executable {', '.join(missing)}")
