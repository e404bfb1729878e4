"""A graceful stop that clients ride through: refuse new calls with UNAVAILABLE, finish the rest.

grpc's own server.stop() cancels the calls it has received but not yet handed to the
application, and clients see CANCELLED, which is not safe to retry in general. So before it,
the gate closes: each new call is answered UNAVAILABLE at once, before any work, with a
`grpc-retry-pushback-ms` trailer that tells gRPC's retry policy when to try again (by then this
process is gone and the client's channel waits for a new one: wait-for-ready). The calls already
running finish; the stop proceeds once they have, or when the grace period ends.
"""

from __future__ import annotations

import asyncio
from typing import Any

import grpc

from taskrun_server.handler_wrapping import (
    Continuation,
    StreamBehaviour,
    UnaryBehaviour,
    rewrap,
)

PUSHBACK = (("grpc-retry-pushback-ms", "1000"),)
"""What the refusals tell clients: come back in a second (the retry policy obeys this)."""


class ShutdownGate(grpc.aio.ServerInterceptor):
    def __init__(self) -> None:
        self._closed = False
        self._in_flight = 0
        self._idle = asyncio.Event()
        self._idle.set()

    def close(self) -> None:
        """From now on, refuse every new call."""
        self._closed = True

    async def drained(self, within: float) -> bool:
        """Wait until no unary call is running (streams end on their own); False on timeout."""
        try:
            await asyncio.wait_for(self._idle.wait(), within)
        except TimeoutError:
            return False
        return True

    async def intercept_service(
        self, continuation: Continuation, handler_call_details: grpc.HandlerCallDetails
    ) -> grpc.RpcMethodHandler[Any, Any] | None:
        handler = await continuation(handler_call_details)
        if handler is None:
            return None
        return rewrap(handler, self._unary, self._stream)

    def _unary(self, behaviour: UnaryBehaviour) -> UnaryBehaviour:
        async def gated(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
            if self._closed:
                await _refuse(context)
            self._in_flight += 1
            self._idle.clear()
            try:
                return await behaviour(request, context)
            finally:
                self._in_flight -= 1
                if self._in_flight == 0:
                    self._idle.set()

        return gated

    def _stream(self, behaviour: StreamBehaviour) -> StreamBehaviour:
        async def gated(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
            if self._closed:
                await _refuse(context)
            async for item in behaviour(request, context):
                yield item

        return gated


async def _refuse(context: grpc.aio.ServicerContext[Any, Any]) -> None:
    await context.abort(
        grpc.StatusCode.UNAVAILABLE,
        "the server is stopping; retry (another replica, or this one once restarted)",
        trailing_metadata=PUSHBACK,
    )
