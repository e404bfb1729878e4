"""The one exception type the client raises: a gRPC status, and the field the server named."""

from __future__ import annotations

import grpc


class TaskRunError(Exception):
    """A call failed. `code` is the gRPC status; `field` the request field at fault, if any.

    The server words its messages "field: problem"; the field is split off so that callers can
    point at it without parsing text.
    """

    def __init__(self, code: grpc.StatusCode, details: str) -> None:
        field, sep, problem = details.partition(": ")
        self.code = code
        self.details = details
        self.field: str | None = field if sep and " " not in field else None
        self.problem = problem if self.field else details
        super().__init__(f"{code.name}: {details}")

    @classmethod
    def from_rpc_error(cls, error: grpc.RpcError) -> TaskRunError:
        code = error.code() if hasattr(error, "code") else grpc.StatusCode.UNKNOWN
        details = error.details() if hasattr(error, "details") else str(error)
        return cls(code, details or "")
