"""Run the real kstatus (cli-utils) and Argo CD health code over objects (test helper).

tools/build-gitops.sh builds each tool from its pinned Go module into a versioned cache outside
the work tree (a no-op when warm, about 30 s for kstatus and a few minutes for Argo CD when
cold); `tool` runs it on first use. Both binaries take a JSON object or List on stdin and print
one result per object, so a whole table of states costs one process. A tool that cannot be
built raises `ToolUnavailable` with the build's reason: callers fail with it, never skip.
"""

from __future__ import annotations

import functools
import json
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

from modelops.devcluster.binaries import BinariesError, build

ROOT = Path(__file__).resolve().parents[3]
BUILD_SCRIPT = ROOT / "tools" / "build-gitops.sh"
ARGOCD_CM = ROOT / "deploy" / "argocd" / "argocd-cm.yaml"


class ToolUnavailable(RuntimeError):
    """The tool could not be built or did not run; the message says why."""


@dataclass(frozen=True)
class Result:
    """One object's verdict: kstatus' status or Argo CD's health, with its message."""

    kind: str
    name: str
    status: str
    message: str
    error: str = ""


@functools.cache
def tool(name: str) -> Path:
    """The path of a built tool (kstatus or argocd-health), building it if the cache is cold."""
    progress = functools.partial(print, file=sys.stderr)
    try:
        return build((name,), BUILD_SCRIPT, progress) / name
    except BinariesError as error:
        raise ToolUnavailable(f"cannot build {name} with {BUILD_SCRIPT.name}: {error}") from None


def _as_list(objects: Iterable[dict]) -> bytes:
    return json.dumps({"apiVersion": "v1", "kind": "List", "items": list(objects)},
                      default=_json_default).encode()


def _json_default(value: Any) -> str:
    if hasattr(value, "isoformat"):  # a YAML timestamp in a fixture: the API server's text form
        return value.strftime("%Y-%m-%dT%H:%M:%SZ")
    raise TypeError(f"cannot encode {type(value).__name__} as JSON")


def _run(name: str, args: list[str], objects: Iterable[dict]) -> list[Result]:
    proc = subprocess.run([str(tool(name)), *args], input=_as_list(objects),
                          capture_output=True, timeout=120)
    if proc.returncode != 0:
        raise ToolUnavailable(f"{name} exited with {proc.returncode}: {proc.stderr.decode()}")
    return [Result(r["kind"], r["name"], r["status"], r["message"], r.get("error", ""))
            for r in json.loads(proc.stdout)]


def kstatus(objects: Iterable[dict]) -> list[Result]:
    """cli-utils' `status.Compute` for each object, in order."""
    return _run("kstatus", [], objects)


def argocd_health(objects: Iterable[dict], argocd_cm: Path = ARGOCD_CM) -> list[Result]:
    """Argo CD's health for each object, with the resource customizations of `argocd_cm`."""
    return _run("argocd-health", [str(argocd_cm)], objects)
