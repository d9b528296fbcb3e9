"""Request errors and the HTTP status each maps to, in one place.

Raised anywhere below the routes (body reading, protocol parsing, the data plane, the router);
the routes turn them into `{"error": "<message>"}` with the status. Only ModelFailed (500) means
the model itself raised; every problem with the request is a 4xx. Pure.
"""

from __future__ import annotations


class ServingError(Exception):
    status = 500

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class InvalidInput(ServingError):
    status = 400


class NotFound(ServingError):
    status = 404


class PayloadTooLarge(ServingError):
    status = 413


class UnsupportedMediaType(ServingError):
    status = 415


class ModelFailed(ServingError):
    """The model raised while predicting (counted in model_errors_total)."""

    status = 500


class StepFailed(ServingError):
    """A pipeline step answered with an error or could not be reached."""

    status = 502


class NotReady(ServingError):
    status = 503


class StepTimeout(ServingError):
    status = 504
