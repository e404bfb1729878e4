"""Wrapped handlers are built once per method, and afresh whenever the handler beneath changes."""

from __future__ import annotations

from typing import Any, TypeAlias, cast

import grpc

from taskrun_server.handler_wrapping import WrappedHandlers

Handler: TypeAlias = "grpc.RpcMethodHandler[Any, Any]"


async def _answer(request: Any, context: Any) -> str:
    return "servicer"


async def _refuse(request: Any, context: Any) -> str:
    return "refused"


def _counting() -> tuple[WrappedHandlers, list[str]]:
    wrapped: list[str] = []

    def wrap(method: str, handler: grpc.RpcMethodHandler[Any, Any]) -> Any:
        wrapped.append(method)
        return ("wrapped", method, handler)

    return WrappedHandlers(wrap), wrapped


def test_a_method_called_again_is_not_wrapped_again() -> None:
    handlers, wrapped = _counting()
    servicer: Handler = grpc.unary_unary_rpc_method_handler(_answer)
    first = handlers.get("/a.S/M", servicer)
    assert all(handlers.get("/a.S/M", servicer) is first for _ in range(3))
    assert wrapped == ["/a.S/M"]


def test_each_method_has_its_own_wrapping() -> None:
    handlers, wrapped = _counting()
    servicer: Handler = grpc.unary_unary_rpc_method_handler(_answer)
    assert handlers.get("/a.S/M", servicer) != handlers.get("/a.S/N", servicer)
    assert wrapped == ["/a.S/M", "/a.S/N"]


def test_a_different_handler_beneath_is_wrapped_itself_never_served_the_old_wrapping() -> None:
    """An inner interceptor (authentication) answered this call with a refusal: the refusal is
    what gets wrapped, and the next authenticated call gets the servicer's wrapping again."""
    handlers, _ = _counting()
    servicer: Handler = grpc.unary_unary_rpc_method_handler(_answer)
    refusal: Handler = grpc.unary_unary_rpc_method_handler(_refuse)
    handlers.get("/a.S/M", servicer)
    assert cast(object, handlers.get("/a.S/M", refusal)) == ("wrapped", "/a.S/M", refusal)
    assert cast(object, handlers.get("/a.S/M", servicer)) == ("wrapped", "/a.S/M", servicer)
