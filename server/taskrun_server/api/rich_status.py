"""Error statuses with structured details (AIP-193), so that any client reads what went wrong
without parsing text: a google.rpc.Status in the `grpc-status-details-bin` trailer carrying

- ErrorInfo: a machine-readable `reason` in the `taskrun` domain, and metadata (the field);
- BadRequest: the field violations of an INVALID_ARGUMENT, each with its field path;
- RetryInfo: when to try again, where the server knows (overload, restarts, a lost database),
  with gRPC's own `grpc-retry-pushback-ms` beside it for clients' retry policies.

grpcio-status packs them; the message text stays as readable as before.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import grpc
from google.protobuf import any_pb2, duration_pb2
from google.rpc import error_details_pb2, status_pb2
from grpc_status import rpc_status

DOMAIN = "taskrun"
"""ErrorInfo.domain of every error this service raises."""


@dataclass(frozen=True, slots=True)
class RichStatus:
    """A status and its details, before they are packed for the wire."""

    code: grpc.StatusCode
    message: str
    reason: str
    field: str | None = None
    retry_after: timedelta | None = None
    metadata: dict[str, str] = dataclasses.field(default_factory=dict)

    def proto(self) -> status_pb2.Status:
        """As google.rpc.Status: the trailer's content, or a batch item's error."""
        info = error_details_pb2.ErrorInfo(reason=self.reason, domain=DOMAIN)
        info.metadata.update(self.metadata)
        if self.field:
            info.metadata["field"] = self.field
        details = [_packed(info)]
        if self.field and self.code is grpc.StatusCode.INVALID_ARGUMENT:
            violation = error_details_pb2.BadRequest.FieldViolation(
                field=self.field, description=self.message
            )
            details.append(_packed(error_details_pb2.BadRequest(field_violations=[violation])))
        if self.retry_after is not None:
            delay = duration_pb2.Duration()
            delay.FromTimedelta(self.retry_after)
            details.append(_packed(error_details_pb2.RetryInfo(retry_delay=delay)))
        return status_pb2.Status(code=self.code.value[0], message=self.text, details=details)

    def trailers(self) -> tuple[tuple[str, Any], ...]:
        """The trailing metadata that carries the details (and the retry pushback)."""
        packed = rpc_status.to_status(self.proto())
        trailers: tuple[tuple[str, Any], ...] = tuple(packed.trailing_metadata)
        if self.retry_after is not None:
            pushback = str(int(self.retry_after.total_seconds() * 1000))
            trailers += (("grpc-retry-pushback-ms", pushback),)
        return trailers

    @property
    def text(self) -> str:
        return f"{self.field}: {self.message}" if self.field else self.message

    async def abort(self, context: grpc.aio.ServicerContext[Any, Any]) -> None:
        """End the call with this status (raises, as ServicerContext.abort does)."""
        await context.abort(self.code, self.text, trailing_metadata=self.trailers())


def _packed(detail: Any) -> any_pb2.Any:
    out = any_pb2.Any()
    out.Pack(detail)
    return out
