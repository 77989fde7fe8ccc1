"""Typed errors. Every bad input names the rule, the limit and the actual value, and maps to a gRPC code."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import grpc


class MotionError(Exception):
    """Base class for errors the service reports to users."""

    code: grpc.StatusCode = grpc.StatusCode.INTERNAL

    def __init__(self, message: str, **details: Any) -> None:
        super().__init__(message)
        self.message = message
        self.details = details

    def to_dict(self) -> dict[str, Any]:
        return {"error": type(self).__name__, "code": self.code.name, "message": self.message, **self.details}


@dataclass
class _Rule:
    rule: str
    limit: Any
    actual: Any


class InputError(MotionError):
    """A user input breaks a rule of the product spec.

    ``rule`` is a stable identifier such as ``image.min_side_px``; ``limit`` and ``actual`` are the
    allowed bound and the value found.
    """

    code = grpc.StatusCode.INVALID_ARGUMENT

    def __init__(self, rule: str, message: str, *, limit: Any = None, actual: Any = None) -> None:
        super().__init__(f"{rule}: {message}", rule=rule, limit=limit, actual=actual)
        self.rule = rule
        self.limit = limit
        self.actual = actual


class TooLargeError(InputError):
    """An upload is over a size limit (rejected before it is stored)."""


class NotFoundError(MotionError):
    code = grpc.StatusCode.NOT_FOUND


class UnauthenticatedError(MotionError):
    code = grpc.StatusCode.UNAUTHENTICATED


class ResourceExhaustedError(MotionError):
    code = grpc.StatusCode.RESOURCE_EXHAUSTED


class FailedPreconditionError(MotionError):
    code = grpc.StatusCode.FAILED_PRECONDITION


class UnavailableError(MotionError):
    code = grpc.StatusCode.UNAVAILABLE


class NoPersonError(InputError):
    """No performer / character could be found where one is required."""


class ModelError(FailedPreconditionError):
    """Models missing or corrupt (run `motionctl models fetch`)."""


def grpc_code_for(exc: BaseException) -> grpc.StatusCode:
    if isinstance(exc, MotionError):
        return exc.code
    return grpc.StatusCode.INTERNAL
