"""`python -m modelops.serving [serve|fetch]`: the serving image's command.

`serve` (the default) prepares the shared metrics directory (before prometheus_client is
imported anywhere), reads the settings, makes sure the verified artifact is on disk and runs
gunicorn. `fetch` only downloads and verifies the artifact into MODELOPS_ARTIFACT_DIR (the init
container for http(s) artifacts). Either way a failure writes `<Reason>: <message>` to the
termination-message file and exits 1.
"""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path

from modelops import contract as c
from modelops.serving.failures import StartupFailure, write_termination_message
from modelops.serving.settings import ServingSettings
from modelops.serving.shared_dir import prepare_shared_dir

USAGE = "usage: python -m modelops.serving [serve|fetch]"

log = logging.getLogger("modelops.serving")


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    command = args[0] if args else "serve"
    if command not in ("serve", "fetch") or len(args) > 1:
        print(USAGE, file=sys.stderr)
        return 2
    logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                        format="%(asctime)s [%(process)d] [%(levelname)s] %(name)s: %(message)s")
    termination_log = Path(os.environ.get(c.ENV_TERMINATION_LOG) or c.DEFAULT_TERMINATION_LOG)
    try:
        if command == "serve":
            prepare_shared_dir(os.environ)
        settings = ServingSettings.from_env(os.environ)
        termination_log = settings.termination_log
        if settings.mode == "model":
            from modelops.serving.artifact import fetch

            fetch(settings)
        if command == "fetch":
            return 0
        return _serve(settings)
    except StartupFailure as failure:
        log.error("%s", failure.line())
        write_termination_message(termination_log, failure)
        return 1


def _serve(settings: ServingSettings) -> int:
    from modelops.serving.server import ServingApplication

    log.info("Serving %s (%s mode) on %s:%d with %d worker(s) x %d thread(s)", settings.served_name,
             settings.mode, settings.host, settings.port, settings.workers, settings.threads)
    try:
        ServingApplication(settings).run()
    except SystemExit as stopped:
        return 0 if stopped.code in (None, 0) else 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
