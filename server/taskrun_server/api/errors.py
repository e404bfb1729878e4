"""One place where exceptions become gRPC statuses.

Domain errors carry their field and become INVALID_ARGUMENT, NOT_FOUND and so on. A lost
database becomes UNAVAILABLE, which clients may retry. Anything else is a bug: it is logged with
its traceback and the client sees INTERNAL with a reference, never the traceback itself.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import grpc
from google.protobuf.message import DecodeError
from google.rpc import status_pb2
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError

from taskrun_server.api.offload import OFFLOAD_BYTES, mark_request_large, off_the_loop_if
from taskrun_server.api.rich_status import RichStatus
from taskrun_server.domain.errors import (
    AlreadyExists,
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    TaskRunServiceError,
    Unavailable,
)
from taskrun_server.domain.limits import MAX_JSON_DEPTH
from taskrun_server.handler_wrapping import (
    BidiBehaviour,
    Continuation,
    StreamBehaviour,
    UnaryBehaviour,
    WrappedHandlers,
    rewrap,
)

logger = logging.getLogger(__name__)

_CODES: dict[type[TaskRunServiceError], tuple[grpc.StatusCode, str]] = {
    InvalidArgument: (grpc.StatusCode.INVALID_ARGUMENT, "INVALID_FIELD"),
    NotFound: (grpc.StatusCode.NOT_FOUND, "NOT_FOUND"),
    AlreadyExists: (grpc.StatusCode.ALREADY_EXISTS, "ALREADY_EXISTS"),
    FailedPrecondition: (grpc.StatusCode.FAILED_PRECONDITION, "FAILED_PRECONDITION"),
}
"""Each domain error's status code and ErrorInfo reason."""

DATABASE_RETRY = timedelta(seconds=1)


def status_for(error: BaseException) -> RichStatus:
    """The status, with its details, a client sees for an exception."""
    if isinstance(error, TaskRunServiceError) and not isinstance(error, Unavailable):
        code, reason = _CODES.get(
            type(error), (grpc.StatusCode.FAILED_PRECONDITION, "FAILED_PRECONDITION")
        )
        return RichStatus(code, error.message, reason, field=error.field)
    if isinstance(error, NotImplementedError):  # a library servicer's unimplemented method
        return RichStatus(grpc.StatusCode.UNIMPLEMENTED, "method not implemented", "UNIMPLEMENTED")
    if isinstance(error, Unavailable | OperationalError | InterfaceError | PoolTimeoutError) or (
        isinstance(error, DBAPIError) and error.connection_invalidated
    ):
        logger.warning("database unavailable: %s", error.__class__.__name__)
        return RichStatus(
            grpc.StatusCode.UNAVAILABLE,
            "the database is unavailable; retry later",
            "DATABASE_UNAVAILABLE",
            retry_after=DATABASE_RETRY,
        )
    reference = uuid.uuid4().hex[:12]
    logger.error("unexpected error (ref %s)", reference, exc_info=error)
    return RichStatus(
        grpc.StatusCode.INTERNAL,
        f"internal error (ref {reference})",
        "INTERNAL",
        metadata={"reference": reference},
    )


def rpc_status_for(error: BaseException) -> status_pb2.Status:
    """The google.rpc.Status a client sees for an exception, for answers that carry one per
    item (a batch's results) rather than as the call's status."""
    return status_for(error).proto()


@dataclass(frozen=True, slots=True)
class MalformedRequest:
    """Stands in for a request whose bytes did not parse.

    grpc answers a failing deserializer with UNKNOWN; parsing here instead lets the call be
    answered INVALID_ARGUMENT like any other bad input.
    """

    message_type: str
    too_deep: bool = False

    @property
    def problem(self) -> str:
        if self.too_deep:
            return (
                f"request: a {self.message_type} nests deeper than protobuf decoding allows "
                f"(messages 64 levels deep; free-form JSON values about 30 levels, "
                f"the limit for state data, labels and parameters is {MAX_JSON_DEPTH})"
            )
        return f"request: not a valid {self.message_type} (corrupt protobuf wire format)"


@dataclass(frozen=True, slots=True)
class LargeRequest:
    """A request too large to parse on the event loop: parsed on the heavy-work thread just
    before its handler runs (grpc would parse it on the loop, holding up every other call)."""

    payload: bytes
    parse: Callable[[bytes], Any]


def _tolerant(deserializer: Callable[[bytes], Any] | None) -> Callable[[bytes], Any] | None:
    if deserializer is None:
        return None

    def parse(payload: bytes) -> Any:
        try:
            return deserializer(payload)
        except DecodeError as error:
            owner = getattr(deserializer, "__self__", None)
            name = owner.DESCRIPTOR.full_name if owner is not None else "request"
            return MalformedRequest(name, too_deep="MaxDepth" in str(error))

    def parse_later_if_large(payload: bytes) -> Any:
        return LargeRequest(payload, parse) if len(payload) > OFFLOAD_BYTES else parse(payload)

    return parse_later_if_large


async def _parsed(request: Any) -> Any:
    if isinstance(request, LargeRequest):
        mark_request_large()
        return await off_the_loop_if(True, request.parse, request.payload)
    return request


async def _refuse_malformed(
    request: MalformedRequest, context: grpc.aio.ServicerContext[Any, Any]
) -> None:
    problem = request.problem.removeprefix("request: ")
    refusal = RichStatus(
        grpc.StatusCode.INVALID_ARGUMENT, problem, "MALFORMED_REQUEST", field="request"
    )
    await refusal.abort(context)


def _wrap_unary(behaviour: UnaryBehaviour) -> UnaryBehaviour:
    async def wrapped(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
        request = await _parsed(request)
        if isinstance(request, MalformedRequest):
            await _refuse_malformed(request, context)
        try:
            return await behaviour(request, context)
        except grpc.aio.AbortError:
            raise
        except Exception as error:
            await _abort_unless_ended(context, error)

    return wrapped


def _wrap_stream(behaviour: StreamBehaviour) -> StreamBehaviour:
    async def wrapped(
        request: Any, context: grpc.aio.ServicerContext[Any, Any]
    ) -> AsyncIterator[Any]:
        request = await _parsed(request)
        if isinstance(request, MalformedRequest):
            await _refuse_malformed(request, context)
        try:
            async for item in behaviour(request, context):
                yield item
        except grpc.aio.AbortError:
            raise
        except Exception as error:
            await _abort_unless_ended(context, error)

    return wrapped


async def _abort_unless_ended(
    context: grpc.aio.ServicerContext[Any, Any], error: Exception
) -> None:
    """Answer the error's status; if the call has already ended (the client cancelled it while
    the handler was answering), there is nobody left to tell, and aborting again would fail."""
    if context.done():
        logger.debug("call ended before its error could be sent: %s", error)
        return
    await status_for(error).abort(context)


def _wrap_bidi(behaviour: BidiBehaviour) -> BidiBehaviour:
    """Reflection's stream (an async generator): a request that does not parse ends the call
    INVALID_ARGUMENT."""

    async def wrapped(
        requests: AsyncIterator[Any], context: grpc.aio.ServicerContext[Any, Any]
    ) -> AsyncIterator[Any]:
        async def parsed() -> AsyncIterator[Any]:
            async for raw in requests:
                request = await _parsed(raw)
                if isinstance(request, MalformedRequest):
                    await _refuse_malformed(request, context)
                yield request

        async for response in behaviour(parsed(), context):
            yield response

    return wrapped


class ErrorStatusInterceptor(grpc.aio.ServerInterceptor):
    """Maps exceptions raised by any unary or server-streaming handler to statuses, and
    requests that do not parse, on any method, to INVALID_ARGUMENT."""

    def __init__(self) -> None:
        self._wrapped = WrappedHandlers(
            lambda _method, handler: rewrap(
                handler, _wrap_unary, _wrap_stream, deserializer=_tolerant, bidi=_wrap_bidi
            )
        )

    async def intercept_service(
        self, continuation: Continuation, handler_call_details: grpc.HandlerCallDetails
    ) -> grpc.RpcMethodHandler[Any, Any] | None:
        handler = await continuation(handler_call_details)
        if handler is None:
            return None
        return self._wrapped.get(handler_call_details.method, handler)
