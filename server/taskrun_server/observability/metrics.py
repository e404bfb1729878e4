"""Prometheus metrics, served over HTTP on their own port.

Each server owns a registry rather than using the process-global one, so that several servers
in one process (the tests run some) never collide, and a scrape shows one server's figures.
The backlog gauges need a database query; a background task refreshes them at an interval
instead of querying on every scrape, so that a scraper can never load the database.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections.abc import Awaitable, Callable
from wsgiref.simple_server import WSGIServer

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    start_http_server,
)
from prometheus_client.gc_collector import GCCollector
from prometheus_client.platform_collector import PlatformCollector
from prometheus_client.process_collector import ProcessCollector

from taskrun_server.repository.delivery import Backlog

logger = logging.getLogger(__name__)

# From 0.5 ms (a cached read) to 30 s (a WAIT-free slow transaction under heavy load).
LATENCY_BUCKETS = (
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
)  # fmt: skip


RPC_LABELS = ["grpc_type", "grpc_service", "grpc_method"]
"""The labels of go-grpc-prometheus and py-grpc-prometheus, which gRPC dashboards expect."""


class ServerMetrics:
    """The metrics one server exports: gRPC's standard server metrics (the names and labels of
    go-grpc-prometheus, which existing dashboards read), the process's own (CPU, memory, file
    descriptors, garbage collection), and taskrun's delivery and backlog figures."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        ProcessCollector(registry=self.registry)
        PlatformCollector(registry=self.registry)
        GCCollector(registry=self.registry)
        self.started = Counter(
            "grpc_server_started",
            "RPCs started on the server.",
            RPC_LABELS,
            registry=self.registry,
        )
        self.handled = Counter(
            "grpc_server_handled",
            "RPCs completed on the server, by the status code the client received.",
            [*RPC_LABELS, "grpc_code"],
            registry=self.registry,
        )
        self.handling_seconds = Histogram(
            "grpc_server_handling_seconds",
            "Time the server took to handle an RPC, to its last message.",
            RPC_LABELS,
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.messages_received = Counter(
            "grpc_server_msg_received",
            "Messages received by the server from its clients.",
            RPC_LABELS,
            registry=self.registry,
        )
        self.messages_sent = Counter(
            "grpc_server_msg_sent",
            "Messages sent by the server to its clients.",
            RPC_LABELS,
            registry=self.registry,
        )
        self.active_subscribers = Gauge(
            "taskrun_active_subscribers",
            "Open SubscribeScheduledTasks streams on this server.",
            registry=self.registry,
        )
        self.deliveries = Counter(
            "taskrun_deliveries",
            "Scheduled task runs sent to subscribers of this server.",
            registry=self.registry,
        )
        self.queued_task_runs = Gauge(
            "taskrun_queued_task_runs",
            "Background task runs in SCHEDULED without a live lease (all servers).",
            registry=self.registry,
        )
        self.leased_task_runs = Gauge(
            "taskrun_leased_task_runs",
            "Background task runs in SCHEDULED leased to a subscriber (all servers).",
            registry=self.registry,
        )

    def record_backlog(self, backlog: Backlog) -> None:
        self.queued_task_runs.set(backlog.queued)
        self.leased_task_runs.set(backlog.leased)


class MetricsEndpoint:
    """The HTTP server that exposes a registry at /metrics, and the backlog refresher."""

    def __init__(self, metrics: ServerMetrics, host: str, port: int) -> None:
        try:
            self._httpd, self._thread = start_http_server(port, host, registry=metrics.registry)
        except OSError as error:
            raise RuntimeError(f"could not bind the metrics port {host}:{port}: {error}") from error
        self._metrics = metrics
        self._refresher: asyncio.Task[None] | None = None

    @property
    def port(self) -> int:
        httpd: WSGIServer = self._httpd
        return int(httpd.server_port)

    def refresh_backlog(self, read: Callable[[], Awaitable[Backlog]], interval: float) -> None:
        """Keep the backlog gauges current, reading every `interval` seconds."""

        async def refresh() -> None:
            while True:
                try:
                    self._metrics.record_backlog(await read())
                except Exception as error:  # the database may be down; metrics must not die
                    logger.warning("could not refresh the backlog gauges: %s", error)
                await asyncio.sleep(interval)

        self._refresher = asyncio.create_task(refresh(), name="metrics-backlog")

    async def stop(self) -> None:
        if self._refresher is not None:
            self._refresher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._refresher
        await asyncio.to_thread(self._shutdown)

    def _shutdown(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        thread: threading.Thread = self._thread
        thread.join(timeout=5)
