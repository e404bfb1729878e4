"""grpc.health.v1.Health: grpc's own servicer, with List answered.

grpcio-health-checking implements Check and Watch but leaves List (added to the protocol later)
raising NotImplementedError. Here it lists every service's status, as set by the reporter.
"""

from __future__ import annotations

from typing import Any

import grpc
from grpc_health.v1 import health_pb2
from grpc_health.v1.health import aio as health_aio

# The type stubs predate List: its messages are reached untyped.
_messages: Any = health_pb2


class HealthServicer(health_aio.HealthServicer):
    def __init__(self) -> None:
        super().__init__()
        self._statuses: dict[str, int] = {}

    async def set(self, service: str, status: Any) -> None:
        self._statuses[service] = int(status)
        await super().set(service, status)

    async def List(self, request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
        return _messages.HealthListResponse(
            statuses={
                name: health_pb2.HealthCheckResponse(status=status)
                for name, status in self._statuses.items()
            }
        )
