"""The modelops operator: `kopf run -m modelops.operator` (or `python -m modelops.operator`)."""

from modelops.operator import handlers  # noqa: F401  (registers the kopf handlers)
