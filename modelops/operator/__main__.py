"""`python -m modelops.operator`: run the operator (all namespaces, or MODELOPS_OPERATOR_NAMESPACES)."""

from __future__ import annotations

import os

import kopf

from modelops.operator.handlers.lifecycle import SETTINGS


def main() -> None:
    import modelops.operator  # noqa: F401  (registers handlers)

    namespaces = [n for n in os.environ.get("MODELOPS_OPERATOR_NAMESPACES", "").split(",") if n]
    kopf.configure(verbose=os.environ.get("MODELOPS_OPERATOR_VERBOSE") == "1")
    kopf.run(
        standalone=True,
        clusterwide=not namespaces,
        namespaces=namespaces,
        liveness_endpoint=f"http://0.0.0.0:{SETTINGS.health_port}/healthz"
        if SETTINGS.health_port else None,
    )


if __name__ == "__main__":
    main()
