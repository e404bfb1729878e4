"""OpenTelemetry tracing: a span per RPC, continuing the caller's trace, and proposals linked
to the trace that made them. Off unless the standard OTEL_* variables turn it on.

- On when OTEL_TRACES_EXPORTER names an exporter (`otlp`, `console`), or an OTLP endpoint
  is set (OTEL_EXPORTER_OTLP_ENDPOINT or ..._TRACES_ENDPOINT); OTEL_SDK_DISABLED=true wins.
- The exporter, sampler and resource read their own variables (OTEL_EXPORTER_OTLP_*,
  OTEL_TRACES_SAMPLER, OTEL_SERVICE_NAME, OTEL_RESOURCE_ATTRIBUTES).
- Spans per RPC come from opentelemetry-instrumentation-grpc's server interceptor, which takes
  the trace context from the call's `traceparent` metadata. Health checks are not traced.
- A state proposal whose `state_details.traceparent` names a trace (the task's own, say) gets a
  span `taskrun.propose_state` linked to it, so that the two traces find each other.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

from opentelemetry import trace
from opentelemetry.instrumentation.grpc import aio_server_interceptor, filters
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import (
    BatchSpanProcessor,
    ConsoleSpanExporter,
    SimpleSpanProcessor,
    SpanExporter,
)
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

_PROPAGATOR = TraceContextTextMapPropagator()
_tracer = trace.get_tracer("taskrun")


def provider_from_environment(environ: Mapping[str, str] = os.environ) -> TracerProvider | None:
    """A tracer provider as the OTEL_* variables describe it, or None: tracing is off."""
    if environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return None
    named = environ.get("OTEL_TRACES_EXPORTER", "")
    exporters = [e.strip() for e in named.split(",") if e.strip() and e.strip() != "none"]
    endpoint = environ.get("OTEL_EXPORTER_OTLP_ENDPOINT") or environ.get(
        "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"
    )
    if not named and endpoint:
        exporters = ["otlp"]
    if not exporters:
        return None
    name = environ.get("OTEL_SERVICE_NAME") or "taskrun-server"
    provider = TracerProvider(resource=Resource.create({"service.name": name}))
    for exporter in exporters:
        if exporter == "console":  # for looking at it: each span as it ends
            provider.add_span_processor(SimpleSpanProcessor(ConsoleSpanExporter()))
        else:
            provider.add_span_processor(BatchSpanProcessor(_exporter(exporter)))
    return provider


def _exporter(name: str) -> SpanExporter:
    if name == "otlp":
        protocol = os.environ.get("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc")
        if protocol != "grpc":
            raise ValueError(f"OTEL_EXPORTER_OTLP_PROTOCOL={protocol}: only grpc is installed")
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter

        return OTLPSpanExporter()
    raise ValueError(f"OTEL_TRACES_EXPORTER: {name!r} is not an exporter here (otlp, console)")


def start_tracing(provider: TracerProvider) -> Any:
    """Make `provider` the process's, and return the interceptor that traces each RPC."""
    trace.set_tracer_provider(provider)
    global _tracer
    _tracer = trace.get_tracer("taskrun")
    return aio_server_interceptor(  # type: ignore[no-untyped-call]  # the package is untyped
        tracer_provider=provider, filter_=filters.negate(filters.health_check())
    )


@contextlib.contextmanager
def proposing(traceparents: Iterable[str | None]) -> Iterator[None]:
    """A span for a state proposal, linked to the traces its proposals name; nothing at all
    while tracing is off or none names one."""
    links = [link for t in traceparents if t and (link := _link(t)) is not None]
    if not links or not _tracer_is_recording():
        yield
        return
    with _tracer.start_as_current_span("taskrun.propose_state", links=links):
        yield


def _link(traceparent: str) -> trace.Link | None:
    context = _PROPAGATOR.extract({"traceparent": traceparent})
    span_context = trace.get_current_span(context).get_span_context()
    return trace.Link(span_context) if span_context.is_valid else None


def _tracer_is_recording() -> bool:
    return isinstance(trace.get_tracer_provider(), TracerProvider)
