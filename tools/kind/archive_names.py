"""Rewrites a `docker save` archive so kind's image build counts every image in it as built.

kind (pkg/build/nodeimage) reads only the first of `manifest.json` / `repositories` it meets
in an archive, takes only entry [0] of manifest.json, and compares names as written; `docker
save` writes manifest.json first and Docker Hub names short (`kindest/kindnetd:...`), while
kind looks for `docker.io/kindest/kindnetd:...`. So this writes `repositories` first and
spells every Docker Hub name in full, in both files. Usage: archive_names.py IN.tar OUT.tar
"""

from __future__ import annotations

import io
import json
import sys
import tarfile


def full_name(name: str) -> str:
    """docker.io/ in front of a name without a registry host (`a/b:t`, `b:t`)."""
    first = name.split("/", 1)[0]
    if "/" in name and ("." in first or ":" in first or first == "localhost"):
        return name
    return f"docker.io/{name}" if "/" in name else f"docker.io/library/{name}"


def rewrite(names: dict[str, bytes]) -> dict[str, bytes]:
    """The two metadata files with every repository name spelled in full."""
    repositories = {full_name(repo): tags
                    for repo, tags in json.loads(names["repositories"]).items()}
    manifest = [{**entry, "RepoTags": [full_name(t) for t in entry.get("RepoTags") or []]}
                for entry in json.loads(names["manifest.json"])]
    return {"repositories": json.dumps(repositories).encode(),
            "manifest.json": json.dumps(manifest).encode()}


def main(source: str, target: str) -> None:
    with tarfile.open(source) as archive:
        members = archive.getmembers()
        metadata = {m.name: archive.extractfile(m).read() for m in members
                    if m.name in ("repositories", "manifest.json")}
        with tarfile.open(target, "w") as out:
            for name, data in rewrite(metadata).items():  # repositories first
                info = tarfile.TarInfo(name)
                info.size, info.mode = len(data), 0o644
                out.addfile(info, io.BytesIO(data))
            for member in members:
                if member.name not in metadata:
                    out.addfile(member, archive.extractfile(member) if member.isfile() else None)


if __name__ == "__main__":
    main(*sys.argv[1:3])
