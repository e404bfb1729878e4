"""Admission: which calls a server process takes on, so that no client can swamp it.

- **Overload sheds.** At most `max_calls` unary calls and `max_streams` server streams run at
  once per process. Beyond that a call is answered RESOURCE_EXHAUSTED at once, before any work,
  with a `google.rpc.RetryInfo` in the status details (AIP-193) and a `grpc-retry-pushback-ms`
  trailer saying when to try again. A flood becomes fast refusals while the calls admitted, and
  health probes (never limited), keep their latency.
- **A graceful stop clients ride through.** grpc's own server.stop() cancels the calls it has
  received but not yet handed to the application: clients see CANCELLED. So before it,
  admission closes: every new call is answered UNAVAILABLE at once, with the same pushback (by
  then this process is gone, and the client's channel waits for a new one: wait-for-ready).
  The calls already running finish; the stop proceeds once they have, or when the grace
  period ends.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

import grpc

from taskrun_server.api.rich_status import RichStatus
from taskrun_server.handler_wrapping import (
    Continuation,
    StreamBehaviour,
    UnaryBehaviour,
    WrappedHandlers,
    rewrap,
)

ALWAYS_ADMITTED = ("/grpc.health.v1.Health/",)
"""Probes must answer however busy the process is: that is how a balancer sees it is alive."""


STOPPING = "the server is stopping; retry (another replica, or this one once restarted)"


class Admission(grpc.aio.ServerInterceptor):
    def __init__(
        self, *, max_calls: int, max_streams: int, retry_after: timedelta = timedelta(seconds=1)
    ) -> None:
        self._max_calls = max_calls
        self._max_streams = max_streams
        self._retry_after = retry_after
        self._closed = False
        self._calls = 0
        self._streams = 0
        self._idle = asyncio.Event()
        self._idle.set()
        self._wrapped = WrappedHandlers(
            lambda _method, handler: rewrap(handler, self._unary, self._stream)
        )

    def close(self) -> None:
        """From now on, refuse every new call UNAVAILABLE."""
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
        if handler is None or handler_call_details.method.startswith(ALWAYS_ADMITTED):
            return handler
        return self._wrapped.get(handler_call_details.method, handler)

    async def _refuse(self, context: grpc.aio.ServicerContext[Any, Any], what: str) -> None:
        if self._closed:
            refusal = RichStatus(
                grpc.StatusCode.UNAVAILABLE,
                STOPPING,
                "SHUTTING_DOWN",
                retry_after=self._retry_after,
            )
        else:
            refusal = RichStatus(
                grpc.StatusCode.RESOURCE_EXHAUSTED,
                f"the server is at its limit of {what}; retry after the delay given",
                "OVERLOADED",
                retry_after=self._retry_after,
            )
        await refusal.abort(context)

    def _unary(self, behaviour: UnaryBehaviour) -> UnaryBehaviour:
        async def admitted(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
            if self._closed or self._calls >= self._max_calls:
                await self._refuse(context, f"{self._max_calls} concurrent calls")
            self._calls += 1
            self._idle.clear()
            try:
                return await behaviour(request, context)
            finally:
                self._calls -= 1
                if self._calls == 0:
                    self._idle.set()

        return admitted

    def _stream(self, behaviour: StreamBehaviour) -> StreamBehaviour:
        async def admitted(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
            if self._closed or self._streams >= self._max_streams:
                await self._refuse(context, f"{self._max_streams} open streams")
            self._streams += 1
            try:
                async for item in behaviour(request, context):
                    yield item
            finally:
                self._streams -= 1

        return admitted
