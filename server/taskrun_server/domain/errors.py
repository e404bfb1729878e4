"""Errors the domain raises; the API layer maps each to one gRPC status code.

Each carries the name of the request field at fault so that a client can tell what to fix.
"""

from __future__ import annotations


class TaskRunServiceError(Exception):
    """Base of every error that is the caller's to fix or to expect."""

    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field

    def __str__(self) -> str:
        return f"{self.field}: {self.message}" if self.field else self.message


class InvalidArgument(TaskRunServiceError):
    """The request is malformed, whatever the stored data."""


class NotFound(TaskRunServiceError):
    """A resource the request names does not exist."""


class AlreadyExists(TaskRunServiceError):
    """The request would create something that exists already under another identity."""


class FailedPrecondition(TaskRunServiceError):
    """The request is well-formed but the stored data does not allow it now."""


class Unavailable(TaskRunServiceError):
    """The database cannot be reached now; the caller may retry."""
