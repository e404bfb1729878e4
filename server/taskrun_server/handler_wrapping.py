"""Rebuild a gRPC method handler around new behaviours: what every interceptor here does.

grpc.aio interceptors cannot wrap a call directly; they return a new handler of the same kind
with the same (de)serialisers. Only unary-unary and unary-stream methods are wrapped: the
contract has no client streams, and reflection's bidirectional stream is left as it is.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, TypeAlias, cast

import grpc

# Strings: the grpc types are generic only to the type checker, not at run time.
UnaryBehaviour: TypeAlias = "Callable[[Any, grpc.aio.ServicerContext[Any, Any]], Awaitable[Any]]"
StreamBehaviour: TypeAlias = (
    "Callable[[Any, grpc.aio.ServicerContext[Any, Any]], AsyncIterator[Any]]"
)
Continuation: TypeAlias = (
    "Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler[Any, Any] | None]]"
)


def rewrap(
    handler: grpc.RpcMethodHandler[Any, Any],
    unary: Callable[[UnaryBehaviour], UnaryBehaviour],
    stream: Callable[[StreamBehaviour], StreamBehaviour],
    deserializer: Callable[[Callable[[bytes], Any] | None], Callable[[bytes], Any] | None]
    | None = None,
) -> grpc.RpcMethodHandler[Any, Any]:
    """The handler with its behaviour wrapped, and optionally its request parser."""
    parse = (deserializer or (lambda original: original))(handler.request_deserializer)
    if handler.unary_unary is not None:
        return grpc.unary_unary_rpc_method_handler(
            unary(cast(UnaryBehaviour, handler.unary_unary)),
            request_deserializer=parse,
            response_serializer=handler.response_serializer,
        )
    if handler.unary_stream is not None:
        return grpc.unary_stream_rpc_method_handler(
            stream(cast(StreamBehaviour, handler.unary_stream)),
            request_deserializer=parse,
            response_serializer=handler.response_serializer,
        )
    return handler
