"""A kind cluster for `make run` and `devcluster up --kind` (I/O around the kind CLI).

`KindCluster` creates a one-node cluster from the node image tools/build-kind.sh makes (or
$MODELOPS_KIND_NODE_IMAGE), with the config modelops.devcluster.kind derives from this host's
quirks, writes its kubeconfig into the work dir (never into ~/.kube), loads the project's images
with `kind load docker-image` (which skips an image the node already holds) and deletes the
cluster again. Creating a cluster that already answers is a no-op, so `make run` twice reuses
it. The e2e fixture drives the same binaries, image and config through pytest-kind instead.
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path

from modelops.devcluster.kind import KindError, KindSettings, write_cluster_config

CREATE_WAIT = "180s"  # kind's own wait for the control-plane node to be Ready
TIMEOUT_SECONDS = 600


@dataclass(frozen=True)
class KindCluster:
    """One named kind cluster whose kubeconfig and config live in `work_dir`."""

    settings: KindSettings
    work_dir: Path

    @property
    def kubeconfig(self) -> Path:
        return self.work_dir / "kubeconfig"

    def _kind(self, *args: str) -> str:
        command = [str(self.settings.kind), *args]
        try:
            done = subprocess.run(command, capture_output=True, text=True,
                                  timeout=TIMEOUT_SECONDS, check=False)
        except subprocess.TimeoutExpired as slow:
            raise KindError(f"{' '.join(command)}: no answer in {TIMEOUT_SECONDS} s") from slow
        if done.returncode != 0:
            raise KindError(f"{' '.join(command)} exited with {done.returncode}:\n"
                            f"{(done.stderr or done.stdout).strip()[-2000:]}")
        return done.stdout

    def exists(self) -> bool:
        return self.settings.name in self._kind("get", "clusters").split()

    def create(self) -> bool:
        """Create the cluster unless it exists; True when it was created now."""
        if self.exists():
            self._kind("export", "kubeconfig", "--name", self.settings.name,
                       "--kubeconfig", str(self.kubeconfig))
            return False
        self.work_dir.mkdir(parents=True, exist_ok=True)
        config = write_cluster_config(self.settings, self.work_dir / "kind.yaml")
        self._kind("create", "cluster", "--name", self.settings.name,
                   "--image", self.settings.node_image, "--config", str(config),
                   "--kubeconfig", str(self.kubeconfig), "--wait", CREATE_WAIT)
        return True

    def load(self, tags: list[str]) -> list[str]:
        """`kind load docker-image` for each tag; returns the tags handed over."""
        for tag in tags:
            self._kind("load", "docker-image", "--name", self.settings.name, tag)
        return list(tags)

    def delete(self) -> None:
        self._kind("delete", "cluster", "--name", self.settings.name,
                   "--kubeconfig", str(self.kubeconfig))
