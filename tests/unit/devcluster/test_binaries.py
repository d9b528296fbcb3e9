"""binaries: a given bin dir is checked, a build script's output is used, failures explain."""

from __future__ import annotations

from pathlib import Path

import pytest

from modelops.contract import ENV_K8S_BIN
from modelops.devcluster.binaries import (
    BUILD_SCRIPT,
    BinariesError,
    pinned_k8s_version,
    resolve_bin_dir,
)


def make_bins(directory: Path, *names: str) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    for name in names:
        (directory / name).write_text("#!/bin/sh\n")
        (directory / name).chmod(0o755)
    return directory


def script(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "build.sh"
    path.write_text(f"set -eu\n{body}\n")
    return path


def test_env_bin_dir_is_used_when_complete(tmp_path: Path) -> None:
    bins = make_bins(tmp_path / "bin", "etcd", "kubectl")
    assert resolve_bin_dir(["etcd", "kubectl"], env={ENV_K8S_BIN: str(bins)}) == bins


def test_env_bin_dir_missing_a_binary_names_it(tmp_path: Path) -> None:
    bins = make_bins(tmp_path / "bin", "etcd")
    (bins / "kubectl").write_text("not executable")
    expected = f"{ENV_K8S_BIN}=.*lacks executable kubectl, kube-apiserver"
    with pytest.raises(BinariesError, match=expected):
        resolve_bin_dir(["etcd", "kubectl", "kube-apiserver"], env={ENV_K8S_BIN: str(bins)})


def test_build_script_gets_the_names_and_its_last_line_is_the_bin_dir(tmp_path: Path) -> None:
    bins = tmp_path / "cache" / "bin"
    build = script(
        tmp_path,
        f'mkdir -p {bins}\nfor n in "$@"; do echo "building $n" >&2; '
        f'printf "#!/bin/sh\\n" > {bins}/$n; chmod +x {bins}/$n; done\necho {bins}',
    )
    lines: list[str] = []
    got = resolve_bin_dir(["etcd", "kubectl"], env={}, progress=lines.append, build_script=build)
    assert got == bins
    assert lines == ["building etcd", "building kubectl", str(bins)]


def test_failed_build_reports_code_and_output(tmp_path: Path) -> None:
    build = script(tmp_path, 'echo "go: cannot find main module" >&2; exit 2')
    with pytest.raises(BinariesError, match="exited with code 2(.|\n)*cannot find main module"):
        resolve_bin_dir(["etcd"], env={}, build_script=build)


def test_build_that_produces_nothing_is_an_error(tmp_path: Path) -> None:
    build = script(tmp_path, f"mkdir -p {tmp_path}/empty; echo {tmp_path}/empty")
    with pytest.raises(BinariesError, match="lacks executable etcd"):
        resolve_bin_dir(["etcd"], env={}, build_script=build)


def test_missing_build_script_says_how_to_proceed(tmp_path: Path) -> None:
    with pytest.raises(BinariesError, match=f"missing.*set \\${ENV_K8S_BIN}"):
        resolve_bin_dir(["etcd"], env={}, build_script=tmp_path / "nope.sh")


def test_pinned_version_comes_from_the_build_script(tmp_path: Path) -> None:
    pinned = script(tmp_path, "K8S_VERSION=v1.2.3\nETCD_VERSION=v3.6.1")
    assert pinned_k8s_version(pinned) == "v1.2.3"
    assert pinned_k8s_version(BUILD_SCRIPT).startswith("v1.")
    with pytest.raises(BinariesError, match="K8S_VERSION"):
        pinned_k8s_version(script(tmp_path, "echo nothing"))
