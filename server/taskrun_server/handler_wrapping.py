"""Rebuild a gRPC method handler around new behaviours: what every interceptor here does.

grpc.aio interceptors cannot wrap a call directly; they return a new handler of the same kind
with the same (de)serialisers. Server streams come in two styles: async generators that yield
their messages, and coroutines that write them with `context.write` (grpc's health Watch). A
coroutine-style stream is wrapped like a unary behaviour, which is what it is to grpc: awaited,
its messages already written. Bidirectional streams (reflection) are wrapped only by an
interceptor that asks to (`bidi`); the contract itself has no client streams.
"""

from __future__ import annotations

import inspect
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, TypeAlias, cast

import grpc

# Strings: the grpc types are generic only to the type checker, not at run time.
UnaryBehaviour: TypeAlias = "Callable[[Any, grpc.aio.ServicerContext[Any, Any]], Awaitable[Any]]"
StreamBehaviour: TypeAlias = (
    "Callable[[Any, grpc.aio.ServicerContext[Any, Any]], AsyncIterator[Any]]"
)
BidiBehaviour: TypeAlias = "Callable[[AsyncIterator[Any], grpc.aio.ServicerContext[Any, Any]], Any]"
Continuation: TypeAlias = (
    "Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler[Any, Any] | None]]"
)


def rewrap(
    handler: grpc.RpcMethodHandler[Any, Any],
    unary: Callable[[UnaryBehaviour], UnaryBehaviour],
    stream: Callable[[StreamBehaviour], StreamBehaviour],
    deserializer: Callable[[Callable[[bytes], Any] | None], Callable[[bytes], Any] | None]
    | None = None,
    bidi: Callable[[BidiBehaviour], BidiBehaviour] | None = None,
) -> grpc.RpcMethodHandler[Any, Any]:
    """The handler with its behaviour wrapped, and optionally its request parser."""
    parse = (deserializer or (lambda original: original))(handler.request_deserializer)
    codecs: dict[str, Any] = {
        "request_deserializer": parse,
        "response_serializer": handler.response_serializer,
    }
    if handler.unary_unary is not None:
        return grpc.unary_unary_rpc_method_handler(
            unary(cast(UnaryBehaviour, handler.unary_unary)), **codecs
        )
    if handler.unary_stream is not None:
        behaviour = handler.unary_stream
        wrapped = (
            stream(cast(StreamBehaviour, behaviour))
            if inspect.isasyncgenfunction(behaviour)
            else unary(cast(UnaryBehaviour, behaviour))
        )
        return grpc.unary_stream_rpc_method_handler(wrapped, **codecs)
    if bidi is not None and inspect.isasyncgenfunction(handler.stream_stream):
        return grpc.stream_stream_rpc_method_handler(
            bidi(cast(BidiBehaviour, handler.stream_stream)), **codecs
        )
    return handler


class WrappedHandlers:
    """Each method's wrapped handler, built on its first call and reused while the handler it
    wraps is the same object.

    Wrapping builds new closures, a new handler and (for metrics) label lookups: done on every
    call, about a tenth of the event loop's busy time in a profile of lone creates. The handler
    an interceptor receives is the same object call after call (the servicer's, or the inner
    interceptor's memo), except when an inner interceptor answers this call differently (an
    authentication refusal): that handler is not the remembered one, so it is wrapped afresh
    and replaces the memo. One entry per method that exists: unknown methods reach the
    interceptor as None and are never kept.
    """

    def __init__(
        self,
        wrap: Callable[[str, grpc.RpcMethodHandler[Any, Any]], grpc.RpcMethodHandler[Any, Any]],
    ) -> None:
        self._wrap = wrap
        self._by_method: dict[
            str, tuple[grpc.RpcMethodHandler[Any, Any], grpc.RpcMethodHandler[Any, Any]]
        ] = {}

    def get(
        self, method: str, handler: grpc.RpcMethodHandler[Any, Any]
    ) -> grpc.RpcMethodHandler[Any, Any]:
        kept = self._by_method.get(method)
        if kept is not None and kept[0] is handler:
            return kept[1]
        wrapped = self._wrap(method, handler)
        self._by_method[method] = (handler, wrapped)
        return wrapped
