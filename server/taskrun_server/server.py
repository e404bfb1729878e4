"""The gRPC server's lifecycle: build it, serve, and stop it gracefully.

Health checking and reflection are always on, so grpcurl and `buf curl` work against any
running instance without the .proto files.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from datetime import timedelta

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_health.v1.health import aio as health_aio
from opentelemetry.sdk.trace import TracerProvider
from sqlalchemy.ext.asyncio import AsyncEngine

from taskrun.v1 import (
    concurrency_limits_pb2,
    concurrency_limits_pb2_grpc,
    resources_pb2,
    resources_pb2_grpc,
    task_run_service_pb2,
    task_run_service_pb2_grpc,
)
from taskrun_server.api.admission import Admission
from taskrun_server.api.auth_interceptor import TokenAuthInterceptor
from taskrun_server.api.concurrency_limit_servicer import ConcurrencyLimitServicer
from taskrun_server.api.errors import ErrorStatusInterceptor
from taskrun_server.api.health_reporter import DatabaseHealthReporter
from taskrun_server.api.health_servicer import HealthServicer
from taskrun_server.api.reflection import enable_reflection
from taskrun_server.api.resource_servicers import (
    DeploymentServicer,
    FlowRunServicer,
    FlowServicer,
    LogServicer,
)
from taskrun_server.api.task_run_servicer import TaskRunServicer
from taskrun_server.dashboard.app import DashboardEndpoint, build_app
from taskrun_server.dashboard.sessions import Sessions
from taskrun_server.dashboard.views import Services
from taskrun_server.database.engine import create_engine
from taskrun_server.database.notifications import NotificationListener
from taskrun_server.domain.limits import MAX_REQUEST_BYTES
from taskrun_server.observability.metrics import MetricsEndpoint, ServerMetrics
from taskrun_server.observability.rpc_interceptor import RpcObservabilityInterceptor
from taskrun_server.observability.tracing import provider_from_environment, start_tracing
from taskrun_server.orchestration.decision import OrchestrationSettings
from taskrun_server.orchestration.leases import LeaseSettings, timeout_or_never
from taskrun_server.security.tokens import TokenSet
from taskrun_server.security.transport import TransportSecurity, dashboard_tls, transport_for
from taskrun_server.service.coalescing import CoalescingSettings
from taskrun_server.service.concurrency_limits import ConcurrencyLimitService
from taskrun_server.service.delivery import DeliveryService, DeliverySettings
from taskrun_server.service.leases import LeaseService
from taskrun_server.service.orchestration import OrchestrationService
from taskrun_server.service.queues import QueueService
from taskrun_server.service.reaper import Reaper
from taskrun_server.service.resources import ResourceService
from taskrun_server.service.tally_compactor import TallyCompactor
from taskrun_server.service.task_runs import TaskRunService
from taskrun_server.service.watch import WatchService
from taskrun_server.settings import Settings

logger = logging.getLogger(__name__)

MAX_SEND_BYTES = 8 * 1024 * 1024
"""Answers are budgeted to stay under 4 MiB (api/answer_budget.py); this is a backstop."""

SERVICE_NAMES = (
    task_run_service_pb2.DESCRIPTOR.services_by_name["TaskRunService"].full_name,
    concurrency_limits_pb2.DESCRIPTOR.services_by_name["ConcurrencyLimitService"].full_name,
    resources_pb2.DESCRIPTOR.services_by_name["FlowService"].full_name,
    resources_pb2.DESCRIPTOR.services_by_name["DeploymentService"].full_name,
    resources_pb2.DESCRIPTOR.services_by_name["FlowRunService"].full_name,
    resources_pb2.DESCRIPTOR.services_by_name["LogService"].full_name,
)


@dataclass(slots=True)
class RunningServer:
    """A started server and what it owns; `stop` releases all of it."""

    server: grpc.aio.Server
    port: int
    engine: AsyncEngine
    read_engine: AsyncEngine
    health: health_aio.HealthServicer
    listener: NotificationListener
    delivery: DeliveryService
    watch: WatchService
    reaper: Reaper
    compactor: TallyCompactor
    admission: Admission
    metrics: ServerMetrics
    metrics_endpoint: MetricsEndpoint | None
    dashboard: DashboardEndpoint | None
    health_reporter: DatabaseHealthReporter
    tracer_provider: TracerProvider | None = None

    @property
    def metrics_port(self) -> int | None:
        return self.metrics_endpoint.port if self.metrics_endpoint else None

    @property
    def dashboard_port(self) -> int | None:
        return self.dashboard.port if self.dashboard else None

    async def stop(self, grace: float | None) -> None:
        """Refuse new calls (UNAVAILABLE, retry), end subscriptions (UNAVAILABLE: resubscribe),
        let in-flight unary calls finish within `grace`, then close the listener and the pool."""
        await self.health_reporter.stop()
        await self.health.enter_graceful_shutdown()
        self.admission.close()
        self.watch.shut_down()
        self.delivery.shut_down()  # wakes every subscriber and watcher
        started = asyncio.get_running_loop().time()
        await self.admission.drained(grace if grace is not None else 10.0)
        elapsed = asyncio.get_running_loop().time() - started
        if self.dashboard is not None:
            await self.dashboard.stop()
        await self.server.stop(max((grace or 0.0) - elapsed, 0.5))
        await self.reaper.stop()
        await self.compactor.stop()
        await self.listener.stop()
        if self.metrics_endpoint is not None:
            await self.metrics_endpoint.stop()
        if self.tracer_provider is not None:
            await asyncio.to_thread(self.tracer_provider.shutdown)  # flushes what is pending
        await self.engine.dispose()
        if self.read_engine is not self.engine:
            await self.read_engine.dispose()

    async def wait_for_termination(self) -> None:
        await self.server.wait_for_termination()


async def start_server(
    settings: Settings, database_url: str, transport: TransportSecurity | None = None
) -> RunningServer:
    """Build the server on an already-migrated database and start serving. `transport` is the
    decision already taken from `settings`, if the caller took it (to fail before migrating)."""
    transport = transport or transport_for(settings)
    tokens = TokenSet.load(
        settings.auth_tokens.get_secret_value() if settings.auth_tokens else None,
        settings.auth_tokens_file,
    )
    engine = create_engine(database_url, settings)
    read_engine = (
        create_engine(settings.read_database_url, settings)
        if settings.read_database_url
        else engine
    )
    metrics = ServerMetrics()
    # The first is outermost: observability sees every status, refusals included.
    admission = Admission(
        max_calls=settings.max_concurrent_calls, max_streams=settings.max_concurrent_streams
    )
    interceptors: list[grpc.aio.ServerInterceptor] = [
        RpcObservabilityInterceptor(metrics, access_log_enabled=settings.access_log),
        admission,
    ]
    tracer_provider = provider_from_environment()
    if tracer_provider is not None:  # outermost: the span covers everything the call meets
        interceptors.insert(0, start_tracing(tracer_provider))
        logger.info("tracing on: spans per RPC, exported as OTEL_* says")
    if tokens:
        interceptors.append(TokenAuthInterceptor(tokens))
    interceptors.append(ErrorStatusInterceptor())
    server = grpc.aio.server(
        interceptors=interceptors,
        options=[
            ("grpc.max_receive_message_length", MAX_REQUEST_BYTES),
            ("grpc.max_send_message_length", MAX_SEND_BYTES),
            ("grpc.so_reuseport", 1),  # TASKRUN_WORKERS processes share the port
        ],
    )
    coalescing = CoalescingSettings(
        max_batch=settings.write_batch_size, max_in_flight=settings.write_transactions
    )
    task_runs = TaskRunService(engine, coalescing, read_engine=read_engine)
    resources = ResourceService(engine)
    lease_settings = _lease_settings(settings)
    orchestration = OrchestrationService(
        engine,
        OrchestrationSettings(
            concurrency_slot_wait_seconds=settings.concurrency_slot_wait_seconds,
        ),
        leases=lease_settings,
        coalescing=coalescing,
    )
    listener = NotificationListener(database_url)
    delivery = DeliveryService(
        engine,
        listener,
        DeliverySettings(
            lease=timedelta(seconds=settings.lease_seconds),
            poll_interval=timedelta(seconds=settings.delivery_poll_seconds),
        ),
    )
    leases = LeaseService(engine, delivery_lease=delivery.lease, settings=lease_settings)
    watch = WatchService(engine, listener)
    reaper = Reaper(orchestration, settings.reaper_interval_seconds)
    compactor = TallyCompactor(engine, settings.tally_compaction_seconds)
    task_run_service_pb2_grpc.add_TaskRunServiceServicer_to_server(
        TaskRunServicer(task_runs, orchestration, delivery, leases, watch), server
    )
    limits = ConcurrencyLimitService(engine)
    concurrency_limits_pb2_grpc.add_ConcurrencyLimitServiceServicer_to_server(
        ConcurrencyLimitServicer(limits), server
    )
    resources_pb2_grpc.add_FlowServiceServicer_to_server(FlowServicer(resources), server)
    resources_pb2_grpc.add_DeploymentServiceServicer_to_server(
        DeploymentServicer(resources), server
    )
    resources_pb2_grpc.add_FlowRunServiceServicer_to_server(FlowRunServicer(resources), server)
    resources_pb2_grpc.add_LogServiceServicer_to_server(LogServicer(resources), server)

    health = HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health, server)
    enable_reflection(
        (*SERVICE_NAMES, health_pb2.DESCRIPTOR.services_by_name["Health"].full_name), server
    )

    address = f"{settings.host}:{settings.port}"
    if transport.credentials is None:
        port = server.add_insecure_port(address)
    else:
        port = server.add_secure_port(address, transport.credentials)
    if port == 0:
        raise RuntimeError(f"could not bind {settings.host}:{settings.port}")
    metrics_endpoint = None
    if settings.metrics_enabled:
        metrics_endpoint = MetricsEndpoint(metrics, settings.metrics_host, settings.metrics_port)
        metrics_endpoint.refresh_backlog(delivery.backlog, settings.metrics_refresh_seconds)
        logger.info("metrics on http://%s:%d/metrics", settings.metrics_host, metrics_endpoint.port)
    dashboard = None
    if settings.dashboard_enabled:
        services = Services(
            task_runs=task_runs,
            orchestration=orchestration,
            resources=resources,
            limits=limits,
            queues=QueueService(engine, delivery),
        )
        app = build_app(services, Sessions(tokens), watch)
        dashboard = DashboardEndpoint(
            app, settings.dashboard_host, settings.dashboard_port, dashboard_tls(settings)
        )
        await dashboard.start()
        logger.info("dashboard on %s", dashboard.url)
    listener.start()
    delivery.start()
    reaper.start()
    compactor.start()
    await server.start()
    health_reporter = DatabaseHealthReporter(
        health, engine, SERVICE_NAMES, settings.health_check_seconds
    )
    await health_reporter.set_all(serving=True)  # the database was just reachable: migrated
    health_reporter.start()
    logger.info("taskrun serving on %s:%d (%s)", settings.host, port, transport.description)
    if tokens:
        logger.info("bearer-token authentication on: %d token(s); health stays open", len(tokens))
    else:
        logger.info("no bearer tokens configured: calls are not authenticated")
    return RunningServer(
        server=server,
        port=port,
        engine=engine,
        read_engine=read_engine,
        health=health,
        listener=listener,
        delivery=delivery,
        watch=watch,
        reaper=reaper,
        compactor=compactor,
        admission=admission,
        metrics=metrics,
        metrics_endpoint=metrics_endpoint,
        dashboard=dashboard,
        health_reporter=health_reporter,
        tracer_provider=tracer_provider,
    )


def _lease_settings(settings: Settings) -> LeaseSettings:
    return LeaseSettings(
        heartbeat_timeout=timeout_or_never(settings.heartbeat_timeout_seconds),
        execution_timeout=timeout_or_never(settings.execution_timeout_seconds),
    )


async def serve_until_signalled(running: RunningServer, grace: float) -> None:
    """Serve until SIGTERM or SIGINT, then stop gracefully."""
    import signal

    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    logger.info("shutting down; in-flight calls have %.1fs to finish", grace)
    await running.stop(grace)
