"""The kubeconfig the local control plane hands to kubectl, the Python client and kopf.

`build_kubeconfig` is pure: one cluster, one user and one context, all named after the context
(`modelops-dev` by default), with the CA and the client certificate embedded as base64 data so
the file stands alone. `write_kubeconfig` writes it atomically with owner-only permissions,
because it holds a cluster-admin private key.
"""

from __future__ import annotations

import base64
import os
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import yaml

from modelops.contract import DEV_CONTEXT
from modelops.devcluster.pki import KeyPair


def build_kubeconfig(
    server: str, ca_pem: bytes, client: KeyPair, context: str = DEV_CONTEXT
) -> dict[str, Any]:
    """A kubeconfig dict for `server` (an https URL) trusting `ca_pem`, logged in as `client`."""
    parts = urlsplit(server)
    if parts.scheme != "https" or not parts.hostname or parts.port is None:
        raise ValueError(f"server: expected https://<host>:<port>, got {server!r}")
    if not context:
        raise ValueError("context: must be a non-empty name")
    return {
        "apiVersion": "v1",
        "kind": "Config",
        "preferences": {},
        "clusters": [
            {
                "name": context,
                "cluster": {"server": server, "certificate-authority-data": _b64(ca_pem)},
            }
        ],
        "users": [
            {
                "name": context,
                "user": {
                    "client-certificate-data": _b64(client.cert_pem),
                    "client-key-data": _b64(client.key_pem),
                },
            }
        ],
        "contexts": [{"name": context, "context": {"cluster": context, "user": context}}],
        "current-context": context,
    }


def write_kubeconfig(path: Path, config: dict[str, Any]) -> Path:
    """Write `config` as YAML to `path` (mode 0600, replaced atomically) and return the path."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        yaml.safe_dump(config, handle, sort_keys=False)
    os.replace(tmp, path)
    return path


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")
