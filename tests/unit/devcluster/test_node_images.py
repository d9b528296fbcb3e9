"""node_images: which images containerd lacks, from `ctr images ls` and Docker's image IDs."""

from __future__ import annotations

import pytest

from modelops.devcluster.node_images import (image_ref, manifest_config, parse_image_list,
                                             stale_images)

MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
LISTING = "\n".join([
    "REF TYPE DIGEST SIZE PLATFORMS LABELS",
    f"docker.io/modelops/serving:0.1.0 {MANIFEST} sha256:aaa 400 MiB linux/amd64 managed",
    f"sha256:1111 {MANIFEST} sha256:aaa 400 MiB linux/amd64 managed",
    f"docker.io/modelops/operator:0.1.0 {MANIFEST} sha256:bbb 400 MiB linux/amd64 managed",
])


@pytest.mark.parametrize(("tag", "ref"), [
    ("modelops/serving:0.1.0", "docker.io/modelops/serving:0.1.0"),
    ("busybox", "docker.io/library/busybox:latest"),
    ("localhost:5000/x/y", "localhost:5000/x/y:latest"),
    ("registry.example/team/img:2", "registry.example/team/img:2"),
])
def test_image_ref_qualifies_docker_tags(tag: str, ref: str) -> None:
    assert image_ref(tag) == ref


def test_present_image_with_the_same_id_is_not_imported_again() -> None:
    present = parse_image_list(LISTING)
    assert present["docker.io/modelops/serving:0.1.0"] == "sha256:aaa"
    configs = {"sha256:aaa": "sha256:1111"}
    assert stale_images(present, configs, {"modelops/serving:0.1.0": "sha256:1111"}) == []


def test_rebuilt_or_missing_images_are_imported() -> None:
    present = parse_image_list(LISTING)
    configs = {"sha256:aaa": "sha256:1111"}  # operator's manifest could not be read
    wanted = {"modelops/serving:0.1.0": "sha256:2222",  # rebuilt: a new image ID
              "modelops/operator:0.1.0": "sha256:3333",
              "modelops/pause:3.10": "sha256:4444"}  # absent
    assert stale_images(present, configs, wanted) == list(wanted)


def test_the_config_digest_is_read_from_the_manifest() -> None:
    manifest = '{"schemaVersion": 2, "config": {"digest": "sha256:c0ffee", "size": 3}}'
    assert manifest_config(manifest) == "sha256:c0ffee"
