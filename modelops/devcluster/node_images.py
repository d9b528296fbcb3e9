"""Images on the node without a registry: Docker builds them, containerd imports them. I/O.

`build_pause_image` runs tools/node/pause-image.sh (a FROM-scratch image of the static pause
binary); `build_project_images` runs tools/image/build.sh and tags its `:dev` images with the
tags deploy/ and the operator use. `ensure_imported` pipes `docker save` into
`ctr -n k8s.io images import` for the images containerd lacks: an image counts as present when
containerd's tag names a manifest whose config digest is Docker's image ID, so a warm node
imports nothing. `image_ref`, `parse_image_list`, `manifest_config` and `stale_images` are pure.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from modelops.contract import DEFAULT_OPERATOR_IMAGE, DEFAULT_SERVING_IMAGE

REPO = Path(__file__).resolve().parents[2]
PAUSE_SCRIPT = REPO / "tools" / "node" / "pause-image.sh"
IMAGE_BUILD_SCRIPT = REPO / "tools" / "image" / "build.sh"
# What tools/image/build.sh makes -> the tag the manifests ask for.
PROJECT_IMAGES = {
    "modelops/serving:dev": DEFAULT_SERVING_IMAGE,
    "modelops/operator:dev": DEFAULT_OPERATOR_IMAGE,
}
K8S_NAMESPACE = "k8s.io"  # the containerd namespace the CRI plugin uses
BUILD_TIMEOUT = 3600.0
IMPORT_TIMEOUT = 900.0


class ImageError(RuntimeError):
    """An image could not be built, found or imported; the message says which and why."""


def image_ref(tag: str) -> str:
    """The fully qualified reference containerd stores for a Docker tag."""
    name, colon, version = tag.rpartition(":")
    if not colon or "/" in version:  # no tag; a colon, if any, belongs to a registry port
        name, version = tag, "latest"
    first = name.split("/", 1)[0]
    if "/" not in name:
        name = f"docker.io/library/{name}"
    elif "." not in first and ":" not in first and first != "localhost":
        name = f"docker.io/{name}"
    return f"{name}:{version}"


def parse_image_list(text: str) -> dict[str, str]:
    """`ctr images ls` output -> {reference: manifest digest}."""
    images = {}
    for line in text.splitlines()[1:]:
        columns = line.split()
        if len(columns) >= 3 and columns[2].startswith("sha256:"):
            images[columns[0]] = columns[2]
    return images


def stale_images(
    present: Mapping[str, str], configs: Mapping[str, str], wanted: Mapping[str, str]
) -> list[str]:
    """The tags in `wanted` ({tag: docker image id}) that containerd lacks or holds another of.

    `present` maps containerd references to manifest digests, `configs` manifest digests to
    their config digests, which is what Docker calls the image ID.
    """
    stale = []
    for tag, image_id in wanted.items():
        manifest = present.get(image_ref(tag))
        if manifest is None or configs.get(manifest) != image_id:
            stale.append(tag)
    return stale


def manifest_config(manifest_json: str) -> str:
    """The config digest named by an image manifest (JSON text)."""
    return json.loads(manifest_json)["config"]["digest"]


def docker_image_id(tag: str) -> str:
    """The local Docker image ID (sha256:...) of `tag`; ImageError if there is none."""
    result = _run(["docker", "image", "inspect", "--format", "{{.Id}}", tag], 60)
    if result.returncode != 0:
        raise ImageError(f"docker image {tag} not found: {result.stderr.strip()}")
    return result.stdout.strip()


def ensure_imported(socket: Path, tags: Sequence[str]) -> list[str]:
    """Import into containerd (CRI namespace) the `tags` it lacks; returns those imported."""
    wanted = {tag: docker_image_id(tag) for tag in tags}
    listing = _run(_ctr(socket, "images", "ls"), 60)
    if listing.returncode != 0:
        raise ImageError(f"ctr images ls failed: {listing.stderr.strip()}")
    present = parse_image_list(listing.stdout)
    configs = {}
    for tag in wanted:
        manifest = present.get(image_ref(tag))
        if manifest is not None:
            content = _run(_ctr(socket, "content", "get", manifest), 60)
            if content.returncode == 0:
                configs[manifest] = manifest_config(content.stdout)
    stale = stale_images(present, configs, wanted)
    if not stale:
        return []
    save = subprocess.Popen(["docker", "save", *stale], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)
    try:
        imported = subprocess.run(
            _ctr(socket, "images", "import", "--snapshotter=overlayfs", "-"),
            stdin=save.stdout, capture_output=True, text=True, timeout=IMPORT_TIMEOUT,
        )
    finally:
        assert save.stdout is not None
        save.stdout.close()
        saved = save.wait(timeout=IMPORT_TIMEOUT)
    if saved != 0 or imported.returncode != 0:
        why = (save.stderr.read().decode() if save.stderr else "") + imported.stderr
        raise ImageError(f"importing {', '.join(stale)} into containerd failed: {why.strip()}")
    return stale


def build_pause_image(bin_dir: Path, tag: str) -> None:
    """Build the pause image (no-op when current); ImageError with the script's output."""
    result = _run(["bash", str(PAUSE_SCRIPT), str(bin_dir), tag], BUILD_TIMEOUT)
    if result.returncode != 0:
        raise ImageError(f"{PAUSE_SCRIPT.name} failed: {(result.stderr + result.stdout).strip()}")


def build_project_images(progress: Callable[[str], None]) -> list[str]:
    """Run tools/image/build.sh, tag its images for deploy/; returns the deploy tags."""
    with subprocess.Popen(["bash", str(IMAGE_BUILD_SCRIPT)], stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True) as proc:
        assert proc.stdout is not None
        lines = []
        for line in proc.stdout:
            lines.append(line.rstrip("\n"))
            progress(line.rstrip("\n"))
        code = proc.wait()
    if code != 0:
        tail = "\n".join(lines[-30:])
        raise ImageError(f"{IMAGE_BUILD_SCRIPT} exited with code {code}:\n{tail}")
    for built, deployed in PROJECT_IMAGES.items():
        tagged = _run(["docker", "tag", built, deployed], 60)
        if tagged.returncode != 0:
            raise ImageError(f"docker tag {built} {deployed} failed: {tagged.stderr.strip()}")
    return list(PROJECT_IMAGES.values())


def _ctr(socket: Path, *args: str) -> list[str]:
    return ["ctr", f"--address={socket}", f"--namespace={K8S_NAMESPACE}", *args]


def _run(argv: list[str], timeout: float) -> subprocess.CompletedProcess[str]:
    try:
        return subprocess.run(argv, capture_output=True, text=True, timeout=timeout)
    except FileNotFoundError as missing:
        raise ImageError(f"{argv[0]} not found: {missing}") from None
