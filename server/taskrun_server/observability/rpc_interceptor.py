"""Counts, times and logs every RPC.

It sits outside the error interceptor, so it sees the status a client receives: an abort's
code, OK, or CANCELLED when the caller went away. The access log is one structured line per
RPC (one per stream when it ends) with the method, code, latency and task run id.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from typing import Any

import grpc

from taskrun_server.handler_wrapping import (
    Continuation,
    StreamBehaviour,
    UnaryBehaviour,
    WrappedHandlers,
    rewrap,
)
from taskrun_server.observability.metrics import ServerMetrics

access_log = logging.getLogger("taskrun_server.access")

# Codes that say something is wrong on this side, not with the caller's request.
_SERVER_FAULTS = frozenset({"INTERNAL", "UNKNOWN", "UNAVAILABLE", "DATA_LOSS"})

_PROBES = "/grpc.health."


def _code_of(error: BaseException, context: grpc.aio.ServicerContext[Any, Any]) -> str:
    """The status a handler's exception gives the caller. Called in the `except` clause, while
    the call is certainly alive: an abort's code is read from the context then or never."""
    if isinstance(error, grpc.aio.AbortError):
        code = context.code()
        return code.name if isinstance(code, grpc.StatusCode) else grpc.StatusCode.UNKNOWN.name
    if isinstance(error, asyncio.CancelledError | GeneratorExit):
        return grpc.StatusCode.CANCELLED.name
    return grpc.StatusCode.UNKNOWN.name


def _labels(kind: str, method: str) -> tuple[str, str, str]:
    """grpc_type, grpc_service and grpc_method of "/package.Service/Method"."""
    service, _, name = method.lstrip("/").rpartition("/")
    return kind, service, name


def _task_run_id(request: Any, response: Any) -> str | None:
    """The run a call was about: the request's task_run_id, else the returned run's id."""
    requested = getattr(request, "task_run_id", "")
    if requested:
        return str(requested)
    try:
        if response is not None and response.HasField("task_run"):
            return str(response.task_run.id)
    except ValueError:  # the response has no task_run field
        pass
    return None


class RpcObservabilityInterceptor(grpc.aio.ServerInterceptor):
    """Records per-RPC metrics and writes the access log."""

    def __init__(self, metrics: ServerMetrics, access_log_enabled: bool = True) -> None:
        self._metrics = metrics
        self._log = access_log_enabled
        self._wrapped = WrappedHandlers(
            lambda method, handler: rewrap(
                handler,
                lambda behaviour: self._unary(method, behaviour),
                lambda behaviour: self._stream(method, behaviour),
            )
        )

    async def intercept_service(
        self, continuation: Continuation, handler_call_details: grpc.HandlerCallDetails
    ) -> grpc.RpcMethodHandler[Any, Any] | None:
        handler = await continuation(handler_call_details)
        if handler is None:
            return None
        return self._wrapped.get(handler_call_details.method, handler)

    def _unary(self, method: str, behaviour: UnaryBehaviour) -> UnaryBehaviour:
        labels = _labels("unary", method)
        m = self._metrics
        started, received, sent = (
            m.started.labels(*labels),
            m.messages_received.labels(*labels),
            m.messages_sent.labels(*labels),
        )
        handling = m.handling_seconds.labels(*labels)

        async def observed(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
            began = time.perf_counter()
            started.inc()
            received.inc()
            response: Any = None
            code = "OK"
            try:
                response = await behaviour(request, context)
                sent.inc()
                return response
            except BaseException as error:
                code = _code_of(error, context)
                raise
            finally:
                elapsed = time.perf_counter() - began
                m.handled.labels(*labels, code).inc()
                handling.observe(elapsed)
                if self._log:
                    self._write(method, code, elapsed, context.peer(), request, response)

        return observed

    def _stream(self, method: str, behaviour: StreamBehaviour) -> StreamBehaviour:
        labels = _labels("server_stream", method)
        m = self._metrics
        delivering = method.endswith("/SubscribeScheduledTasks")
        sent_counter = m.messages_sent.labels(*labels)

        async def observed(
            request: Any, context: grpc.aio.ServicerContext[Any, Any]
        ) -> AsyncIterator[Any]:
            # Nothing below touches `context` once the stream is over: a stream can be closed
            # after its call is gone (the client cancelled), and the call must not be read then.
            began = time.perf_counter()
            peer = context.peer() if self._log else ""
            code = "OK"
            sent = 0
            m.started.labels(*labels).inc()
            m.messages_received.labels(*labels).inc()
            if delivering:
                m.active_subscribers.inc()
            try:
                async for item in behaviour(request, context):
                    sent += 1
                    sent_counter.inc()
                    if delivering:
                        m.deliveries.inc()
                    yield item
            except BaseException as error:
                code = _code_of(error, context)
                raise
            finally:
                if delivering:
                    m.active_subscribers.dec()
                elapsed = time.perf_counter() - began
                m.handled.labels(*labels, code).inc()
                m.handling_seconds.labels(*labels).observe(elapsed)
                if self._log:
                    self._write(method, code, elapsed, peer, request, messages_sent=sent)

        return observed

    @staticmethod
    def _write(
        method: str,
        code: str,
        elapsed: float,
        peer: str,
        request: Any,
        response: Any = None,
        **fields: Any,
    ) -> None:
        level = logging.WARNING if code in _SERVER_FAULTS else logging.INFO
        if level == logging.INFO and method.startswith(_PROBES):
            level = logging.DEBUG  # load balancers probe health every few seconds
        if not access_log.isEnabledFor(level):
            return
        extra: dict[str, Any] = {
            "rpc": method,
            "code": code,
            "latency_ms": round(elapsed * 1000, 3),
            "peer": peer,
            **fields,
        }
        task_run_id = _task_run_id(request, response)
        if task_run_id:
            extra["task_run_id"] = task_run_id
        access_log.log(level, "rpc finished", extra=extra)
