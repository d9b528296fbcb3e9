"""`modelops` (also `kubectl modelops`): list Models, show history, roll back, retry, promote.

Reads Models through the Kubernetes API and acts only through annotations that the operator
watches (`contract.ANNOTATION_ROLLBACK_TO`, `contract.ANNOTATION_RETRY`, and for a version in
shadow `contract.ANNOTATION_PROMOTE` / `contract.ANNOTATION_ABORT`); it never writes
`spec`, so GitOps tools stay in sync. Every failure (bad input, unknown model, no cluster) ends
with exit status 1 (2 for command-line usage) and one line on stderr.
"""

from __future__ import annotations

import argparse
import secrets
import sys
from collections.abc import Sequence
from datetime import datetime, timezone
from typing import Any, TextIO

from modelops import contract
from modelops.cli_kube import ModelClient, connect
from modelops.cli_views import (
    CliError,
    candidate_version,
    check_name,
    check_namespace,
    check_rollback_target,
    history_table,
    models_table,
    ref,
    rollback_line,
    rollout_line,
    versions_line,
)

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


class UsageError(Exception):
    """argparse refused the command line."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one line instead of usage + error
        raise UsageError(f"{self.prog}: {message} (see {self.prog} --help)")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="modelops", description=__doc__.split("\n")[0])
    parser.add_argument("--kubeconfig", help="path to a kubeconfig (default: $KUBECONFIG)")
    parser.add_argument("--context", help="kubeconfig context to use")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    listing = commands.add_parser("list", help="list Models with versions, error rate, decision")
    scope = listing.add_mutually_exclusive_group()
    scope.add_argument("-n", "--namespace", help="namespace (default: the context's)")
    scope.add_argument("-A", "--all-namespaces", action="store_true", help="every namespace")

    history = commands.add_parser("history", help="show a Model's version history and rollback")
    history.add_argument("name")
    history.add_argument("-n", "--namespace")

    rollback = commands.add_parser("rollback", help="serve an earlier version (annotation)")
    rollback.add_argument("name")
    rollback.add_argument("--to", required=True, metavar="VERSION", help="a version in history")
    rollback.add_argument("-n", "--namespace")

    retry = commands.add_parser("retry", help="retry a rolled-back version (annotation)")
    retry.add_argument("name")
    retry.add_argument("-n", "--namespace")

    for verb, says in (("promote", "let the version in shadow or canary take the traffic now"),
                       ("abort", "stop the version in shadow or canary (it fails; the serving "
                        "version answers everyone)")):
        shadow = commands.add_parser(verb, help=f"{says} (annotation)")
        shadow.add_argument("name")
        shadow.add_argument("-n", "--namespace")
    return parser


def retry_token(now: datetime) -> str:
    """A fresh annotation value: the time plus a random suffix, so two retries never collide."""
    return f"{now:%Y%m%dT%H%M%SZ}-{secrets.token_hex(3)}"


def run_list(models: ModelClient, args: argparse.Namespace, out: TextIO, now: datetime) -> int:
    namespace = None if args.all_namespaces else args.namespace
    found = models.list(namespace)
    if not found:
        where = "any namespace" if namespace is None else f"namespace {namespace!r}"
        print(f"No models found in {where}.", file=out)
        return EXIT_OK
    print(models_table(found, now), file=out)
    return EXIT_OK


def run_history(models: ModelClient, args: argparse.Namespace, out: TextIO, now: datetime) -> int:
    model = models.get(args.namespace, check_name(args.name))
    print(versions_line(model), file=out)
    print(history_table(model), file=out)
    print(rollback_line(model), file=out)
    rollout = rollout_line(model)
    if rollout:
        print(rollout, file=out)
    return EXIT_OK


def run_rollback(models: ModelClient, args: argparse.Namespace, out: TextIO, now: datetime) -> int:
    model = models.get(args.namespace, check_name(args.name))
    check_rollback_target(model, args.to)
    value = f"{args.to}@{retry_token(now)}"  # a fresh value: the same rollback twice is two
    models.annotate(args.namespace, args.name, {contract.ANNOTATION_ROLLBACK_TO: value})
    print(f"Rollback of {ref(model)} to version {args.to} requested "
          f"({contract.ANNOTATION_ROLLBACK_TO}={value})", file=out)
    return EXIT_OK


def run_retry(models: ModelClient, args: argparse.Namespace, out: TextIO, now: datetime) -> int:
    model = models.get(args.namespace, check_name(args.name))
    token = retry_token(now)
    models.annotate(args.namespace, args.name, {contract.ANNOTATION_RETRY: token})
    print(f"Retry of {ref(model)} requested ({contract.ANNOTATION_RETRY}={token})", file=out)
    return EXIT_OK


def run_shadow_verdict(models: ModelClient, args: argparse.Namespace, out: TextIO,
                       now: datetime) -> int:
    """promote / abort: name the version in shadow or canary in the annotation the operator
    acts on."""
    model = models.get(args.namespace, check_name(args.name))
    version = candidate_version(model, args.command)
    key = contract.ANNOTATION_PROMOTE if args.command == "promote" else contract.ANNOTATION_ABORT
    models.annotate(args.namespace, args.name, {key: version})
    print(f"{args.command.capitalize()} of {ref(model)} version {version} requested "
          f"({key}={version})", file=out)
    return EXIT_OK


COMMANDS = {"list": run_list, "history": run_history, "rollback": run_rollback, "retry": run_retry,
            "promote": run_shadow_verdict, "abort": run_shadow_verdict}


def main(
    argv: Sequence[str] | None = None,
    *,
    api: Any = None,
    default_namespace: str = "default",
    out: TextIO | None = None,
    err: TextIO | None = None,
    now: datetime | None = None,
) -> int:
    """Run one command; return the exit status.

    Tests pass `api` (an object with CustomObjectsApi's list/get/patch methods); otherwise the
    kubeconfig (or in-cluster account) is loaded and its namespace is the default.
    """
    out, err = out or sys.stdout, err or sys.stderr
    try:
        args = build_parser().parse_args(argv)
    except UsageError as exc:
        print(exc, file=err)
        return EXIT_USAGE
    except SystemExit as exc:  # --help
        return int(exc.code or 0)
    try:
        if api is None:
            api, default_namespace = connect(args.kubeconfig, args.context)
        args.namespace = check_namespace(args.namespace or default_namespace)
        if args.command == "rollback":
            args.to = args.to.strip()
        when = now or datetime.now(timezone.utc)
        return COMMANDS[args.command](ModelClient(api), args, out, when)
    except CliError as exc:
        print(f"error: {exc}", file=err)
        return EXIT_FAILED


if __name__ == "__main__":
    sys.exit(main())
