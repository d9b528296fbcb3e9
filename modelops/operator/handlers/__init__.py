"""kopf handlers, one module per kind; importing this package registers them all."""

from modelops.operator.handlers import indexes, lifecycle, model, pipeline  # noqa: F401
