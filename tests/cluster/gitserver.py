"""A real Git server on loopback for the GitOps tests (tests/gitops: Flux and Argo CD): git's own
`git http-backend` (smart HTTP) behind a small threaded WSGI server, serving the bare
repositories under one directory.

`GitServer(root).start()` listens on 127.0.0.1 and gives `url(repo)`; `Repo` makes commits in a
work tree and pushes them to the bare repository the server serves. Run as a module, the
server prints its port and serves until killed (`python -m tests.cluster.gitserver ROOT`).
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from pathlib import Path
from socketserver import ThreadingMixIn
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

GIT_ENV = {"GIT_AUTHOR_NAME": "modelops-tests", "GIT_AUTHOR_EMAIL": "tests@modelops.invalid",
           "GIT_COMMITTER_NAME": "modelops-tests", "GIT_COMMITTER_EMAIL": "tests@modelops.invalid"}


def _git(*args: str, cwd: Path) -> str:
    return subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, text=True,
                          env={**os.environ, **GIT_ENV}, timeout=60).stdout


class _ThreadingServer(ThreadingMixIn, WSGIServer):
    daemon_threads = True


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, *args) -> None:  # the controllers poll; keep the test output readable
        pass


def _backend(root: Path):
    def app(environ, start_response):
        env = {"GIT_PROJECT_ROOT": str(root), "GIT_HTTP_EXPORT_ALL": "1",
               "PATH": os.environ.get("PATH", "/usr/bin:/bin")}
        for key in ("REQUEST_METHOD", "QUERY_STRING", "CONTENT_TYPE", "CONTENT_LENGTH",
                    "PATH_INFO", "REMOTE_ADDR", "HTTP_GIT_PROTOCOL", "HTTP_CONTENT_ENCODING"):
            if environ.get(key):
                env[key] = environ[key]
        length = int(environ.get("CONTENT_LENGTH") or 0)
        body = environ["wsgi.input"].read(length) if length else b""
        out = subprocess.run(["git", "http-backend"], input=body, env=env,
                             capture_output=True, timeout=60).stdout
        head, _, payload = out.partition(b"\r\n\r\n")
        if not _:
            head, _, payload = out.partition(b"\n\n")
        headers = [tuple(part.strip() for part in line.split(":", 1))
                   for line in head.decode("latin-1").splitlines() if ":" in line]
        status = next((v for k, v in headers if k.lower() == "status"), "200 OK")
        start_response(status, [(k, v) for k, v in headers if k.lower() != "status"])
        return [payload]
    return app


class GitServer:
    """Smart-HTTP Git on 127.0.0.1 for the bare repositories under `root`."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.server = make_server("127.0.0.1", 0, _backend(root), server_class=_ThreadingServer,
                                  handler_class=_QuietHandler)
        self.port = self.server.server_address[1]

    def start(self) -> GitServer:
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def url(self, repo: str) -> str:
        return f"http://127.0.0.1:{self.port}/{repo}.git"

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class Repo:
    """A work tree whose commits are pushed to `<root>/<name>.git` (created bare)."""

    def __init__(self, root: Path, name: str, work: Path) -> None:
        self.bare, self.work = root / f"{name}.git", work
        _git("init", "--bare", "--initial-branch=main", str(self.bare), cwd=root)
        _git("config", "http.receivepack", "false", cwd=self.bare)
        _git("init", "--initial-branch=main", str(work), cwd=root)
        _git("remote", "add", "origin", str(self.bare), cwd=work)

    def commit(self, files: dict[str, str], message: str) -> str:
        """Write `files` (path -> text), commit and push; returns the commit's sha."""
        for path, text in files.items():
            target = self.work / path
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(text)
        _git("add", "-A", cwd=self.work)
        _git("commit", "-q", "-m", message, cwd=self.work)
        _git("push", "-q", "origin", "main", cwd=self.work)
        return _git("rev-parse", "HEAD", cwd=self.work).strip()


if __name__ == "__main__":
    server = GitServer(Path(sys.argv[1]))
    print(server.port, flush=True)
    server.server.serve_forever()
