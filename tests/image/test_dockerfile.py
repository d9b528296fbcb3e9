"""Static checks of the Dockerfile and .dockerignore against modelops/contract.py (no Docker).

The image's command, port, user and scratch directory are part of the operator↔image contract,
and the Dockerfile cannot import contract.py, so these tests read the Dockerfile's instructions
(a tiny parser: continuation lines joined, comments dropped) and compare them with the constants.
"""

from __future__ import annotations

import fnmatch
import json
import re
from pathlib import Path

import pytest

from modelops import contract

REPO = Path(__file__).resolve().parents[2]
OPERATOR_COMMAND = ["python", "-m", "modelops.operator"]


def instructions(text: str) -> list[tuple[str, str]]:
    """(KEYWORD, arguments) for each instruction, continuation lines joined."""
    joined = re.sub(r"\\\n", " ", text)
    pairs = []
    for line in joined.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            keyword, _, arguments = line.partition(" ")
            pairs.append((keyword.upper(), arguments.strip()))
    return pairs


def stages(pairs: list[tuple[str, str]]) -> dict[str, dict]:
    """Stage name → {"parent": FROM image or stage, "body": [(KEYWORD, args), ...]}, in order."""
    found: dict[str, dict] = {}
    current = None
    for keyword, arguments in pairs:
        if keyword == "FROM":
            parent, *alias = arguments.split()  # "image [AS name]"
            name = alias[1].lower() if len(alias) == 2 else f"#{len(found)}"
            current = found.setdefault(name, {"parent": parent, "body": []})
        elif current is not None:
            current["body"].append((keyword, arguments))
    return found


def effective(all_stages: dict[str, dict], stage: str, keyword: str) -> list[str]:
    """Every value of KEYWORD that STAGE sees, from its oldest ancestor stage to itself."""
    chain = []
    while stage in all_stages:
        chain.append(all_stages[stage])
        stage = all_stages[stage]["parent"]
    return [args for entry in reversed(chain) for kw, args in entry["body"] if kw == keyword]


@pytest.fixture(scope="module")
def dockerfile() -> dict[str, dict]:
    return stages(instructions((REPO / "Dockerfile").read_text()))


def test_default_base_is_the_registry_python_slim() -> None:
    pairs = instructions((REPO / "Dockerfile").read_text())
    first_from = next(i for i, (kw, _) in enumerate(pairs) if kw == "FROM")
    assert ("ARG", "BASE_IMAGE=python:3.11-slim") in pairs[:first_from]


def test_serving_is_the_last_stage_so_it_is_the_default_target(dockerfile) -> None:
    assert list(dockerfile)[-1] == "serving"
    assert "operator" in dockerfile


@pytest.mark.parametrize(
    ("stage", "command"),
    [("serving", list(contract.SERVING_COMMAND)), ("operator", OPERATOR_COMMAND)],
)
def test_command_is_the_contract_and_there_is_no_entrypoint(dockerfile, stage, command) -> None:
    assert [json.loads(cmd) for cmd in effective(dockerfile, stage, "CMD")][-1] == command
    assert effective(dockerfile, stage, "ENTRYPOINT") == []


@pytest.mark.parametrize("stage", ["serving", "operator"])
def test_runs_as_the_contract_uid_and_writes_only_under_scratch(dockerfile, stage) -> None:
    assert effective(dockerfile, stage, "USER")[-1] == f"{contract.IMAGE_UID}:{contract.IMAGE_UID}"
    assert effective(dockerfile, stage, "WORKDIR")[-1] == contract.SCRATCH_MOUNT
    env = " ".join(effective(dockerfile, stage, "ENV"))
    assert f"HOME={contract.SCRATCH_MOUNT}" in env and f"TMPDIR={contract.SCRATCH_MOUNT}" in env
    assert "PYTHONDONTWRITEBYTECODE=1" in env


def test_serving_exposes_the_contract_port(dockerfile) -> None:
    assert effective(dockerfile, "serving", "EXPOSE") == [str(contract.DEFAULT_PORT)]


def test_dockerignore_lets_in_every_context_path_the_dockerfile_copies() -> None:
    rules = [line.strip() for line in (REPO / ".dockerignore").read_text().splitlines()
             if line.strip() and not line.startswith("#")]
    assert rules[0] == "*", ".dockerignore is an allow-list"
    allowed = [rule[1:].rstrip("/") for rule in rules if rule.startswith("!")]
    copies = [args for kw, args in instructions((REPO / "Dockerfile").read_text())
              if kw == "COPY" and not args.startswith("--from")]
    sources = [src.rstrip("/") for args in copies for src in args.split()[:-1]]
    assert sources
    for source in sources:
        assert any(fnmatch.fnmatch(rule, source) or source.startswith(rule + "/")
                   or fnmatch.fnmatch(rule, source + "/*") for rule in allowed), source
