"""Bearer-token authentication for every RPC except health checking.

Health stays open so that load balancers and orchestrators can probe without a secret. Every
other call, reflection and streams included, needs "authorization: Bearer <token>" with a token
the server was configured with, or it is answered UNAUTHENTICATED before any handler runs.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import grpc

from taskrun_server.api.rich_status import RichStatus
from taskrun_server.handler_wrapping import Continuation
from taskrun_server.security.tokens import TokenSet

OPEN_PREFIXES = ("/grpc.health.v1.Health/",)
_SCHEME = "bearer "


def presented_token(metadata: tuple[Any, ...] | None) -> str | None:
    for key, value in metadata or ():
        if key == "authorization" and isinstance(value, str):
            if value[: len(_SCHEME)].lower() == _SCHEME:
                return value[len(_SCHEME) :].strip()
            return None
    return None


def _refusal(reason: str) -> Callable[..., Any]:
    async def refuse(_request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> None:
        await RichStatus(grpc.StatusCode.UNAUTHENTICATED, reason, "UNAUTHENTICATED").abort(context)

    return refuse


def _stream_refusal(reason: str) -> Callable[..., AsyncIterator[Any]]:
    """A generator, like the stream handlers it stands in for (outer interceptors iterate it)."""

    async def refuse(_request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
        await RichStatus(grpc.StatusCode.UNAUTHENTICATED, reason, "UNAUTHENTICATED").abort(context)
        yield  # never reached: abort raises

    return refuse


def _refusing_handler(
    handler: grpc.RpcMethodHandler[Any, Any], reason: str
) -> grpc.RpcMethodHandler[Any, Any]:
    """A handler of the same kind as `handler` that only refuses."""
    refuse = _refusal(reason)
    codecs: dict[str, Any] = {
        "request_deserializer": handler.request_deserializer,
        "response_serializer": handler.response_serializer,
    }
    if handler.unary_unary is not None:
        return grpc.unary_unary_rpc_method_handler(refuse, **codecs)
    if handler.unary_stream is not None:
        return grpc.unary_stream_rpc_method_handler(_stream_refusal(reason), **codecs)
    if handler.stream_unary is not None:
        return grpc.stream_unary_rpc_method_handler(refuse, **codecs)
    return grpc.stream_stream_rpc_method_handler(refuse, **codecs)


async def _unimplemented(_request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> None:
    await RichStatus(grpc.StatusCode.UNIMPLEMENTED, "unknown method", "UNIMPLEMENTED").abort(
        context
    )


_UNKNOWN_METHOD: grpc.RpcMethodHandler[Any, Any] = grpc.unary_unary_rpc_method_handler(
    _unimplemented
)
"""Stands in for a method the server does not have: its requests are never parsed."""


class TokenAuthInterceptor(grpc.aio.ServerInterceptor):
    def __init__(self, tokens: TokenSet) -> None:
        self._tokens = tokens

    async def intercept_service(
        self, continuation: Continuation, handler_call_details: grpc.HandlerCallDetails
    ) -> grpc.RpcMethodHandler[Any, Any] | None:
        handler = await continuation(handler_call_details)
        if handler_call_details.method.startswith(OPEN_PREFIXES):
            return handler
        token = presented_token(handler_call_details.invocation_metadata)
        refusal = None
        if token is None:
            refusal = "missing 'authorization: Bearer <token>' metadata"
        elif not self._tokens.accepts(token):
            refusal = "the bearer token is not valid"
        if refusal is None:
            return handler
        # Unknown methods are refused alike, so a caller without a token cannot tell them from
        # real ones (UNIMPLEMENTED would list the methods to anyone who asks).
        return _refusing_handler(handler or _UNKNOWN_METHOD, refusal)
