"""The one exception type the client raises: a gRPC status and its structured details.

The server attaches a google.rpc.Status to every error (AIP-193): an ErrorInfo with a
machine-readable `reason`, the field violations of a bad request, and a retry delay where it
knows one. They are read from the `grpc-status-details-bin` trailer, never from the text.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import grpc
from google.rpc import error_details_pb2, status_pb2

DETAILS_TRAILER = "grpc-status-details-bin"


@dataclass(frozen=True, slots=True)
class FieldViolation:
    """One field of the request the server refused, and why."""

    field: str
    description: str


class TaskRunError(Exception):
    """A call failed.

    - `code`: the gRPC status; `details`: its message.
    - `reason` and `domain`: the ErrorInfo (e.g. INVALID_FIELD, NOT_FOUND, OVERLOADED).
    - `field_violations`: what was wrong with which request field (INVALID_ARGUMENT).
    - `field`: the request field at fault, if the server named one.
    - `retry_delay`: how long the server asked the client to wait before trying again.
    """

    def __init__(
        self,
        code: grpc.StatusCode,
        details: str,
        *,
        reason: str | None = None,
        domain: str | None = None,
        metadata: dict[str, str] | None = None,
        field_violations: tuple[FieldViolation, ...] = (),
        retry_delay: timedelta | None = None,
    ) -> None:
        self.code = code
        self.details = details
        self.reason = reason
        self.domain = domain
        self.metadata = metadata or {}
        self.field_violations = field_violations
        self.retry_delay = retry_delay
        super().__init__(f"{code.name}: {details}")

    @property
    def field(self) -> str | None:
        if self.field_violations:
            return self.field_violations[0].field
        return self.metadata.get("field")

    @property
    def problem(self) -> str:
        """What is wrong, without the field's name in front."""
        if self.field_violations:
            return self.field_violations[0].description
        prefix = f"{self.field}: " if self.field else ""
        return self.details.removeprefix(prefix)

    @classmethod
    def from_rpc_error(cls, error: grpc.RpcError) -> TaskRunError:
        code = error.code() if hasattr(error, "code") else grpc.StatusCode.UNKNOWN
        details = error.details() if hasattr(error, "details") else str(error)
        trailers = error.trailing_metadata() if hasattr(error, "trailing_metadata") else None
        return cls.from_status(code, details or "", _status_in(trailers))

    @classmethod
    def from_status(
        cls, code: grpc.StatusCode, details: str, status: status_pb2.Status | None
    ) -> TaskRunError:
        """From a status and its google.rpc.Status details (a call's, or a batch item's)."""
        found: dict[str, Any] = {}
        violations: list[FieldViolation] = []
        for detail in status.details if status is not None else ():
            info = error_details_pb2.ErrorInfo()
            bad = error_details_pb2.BadRequest()
            retry = error_details_pb2.RetryInfo()
            if detail.Unpack(info):
                found |= {
                    "reason": info.reason,
                    "domain": info.domain,
                    "metadata": dict(info.metadata),
                }
            elif detail.Unpack(bad):
                violations += [FieldViolation(v.field, v.description) for v in bad.field_violations]
            elif detail.Unpack(retry):
                found["retry_delay"] = retry.retry_delay.ToTimedelta()
        return cls(code, details, field_violations=tuple(violations), **found)

    @classmethod
    def from_batch_item(cls, status: status_pb2.Status) -> TaskRunError:
        """The error of one item of a batch answer."""
        code = next((c for c in grpc.StatusCode if c.value[0] == status.code), None)
        return cls.from_status(code or grpc.StatusCode.UNKNOWN, status.message, status)


def _status_in(trailers: Any) -> status_pb2.Status | None:
    for key, value in trailers or ():
        if key == DETAILS_TRAILER:
            return status_pb2.Status.FromString(value)
    return None
