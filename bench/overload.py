"""Health latency while the server takes maximal requests (issue #11's barrage).

A separate process probes health every 10 ms while four clients send CreateTaskRun requests as
large as the limits allow, made of small JSON values (the costliest kind to decode): 1 MiB of
state data and 512 KiB of parameters, about 1.5 MB and 120,000 values each.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
import uuid
from typing import Any

from google.protobuf import struct_pb2

from bench.measure import Row, percentile
from taskrun.v1 import state_pb2
from taskrun.v1 import task_run_service_pb2 as pb

PROBE = """
import json, sys, time
import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
stub = health_pb2_grpc.HealthStub(grpc.insecure_channel(sys.argv[1]))
stub.Check(health_pb2.HealthCheckRequest(), timeout=5)
latencies, end = [], time.monotonic() + float(sys.argv[2])
while time.monotonic() < end:
    started = time.perf_counter()
    stub.Check(health_pb2.HealthCheckRequest(), timeout=10)
    latencies.append(time.perf_counter() - started)
    time.sleep(0.01)
print(json.dumps(latencies))
"""


def maximal_request() -> pb.CreateTaskRunRequest:
    data = struct_pb2.Value()
    data.list_value.values.extend(struct_pb2.Value(number_value=i) for i in range(95_000))
    parameters = struct_pb2.Struct()
    parameters.update({f"k{i}": i for i in range(25_000)})
    return pb.CreateTaskRunRequest(
        task_key="bench.maximal",
        parameters=parameters,
        state=state_pb2.StateCreate(type=state_pb2.STATE_TYPE_COMPLETED, data=data),
    )


async def bench_health_under_maximal_requests(stub: Any, target: str, seconds: float = 6) -> Row:
    probe = await asyncio.create_subprocess_exec(
        sys.executable, "-c", PROBE, target, str(seconds + 1), stdout=asyncio.subprocess.PIPE
    )
    template = maximal_request().SerializeToString()
    end = time.monotonic() + seconds
    sent = 0

    async def barrage() -> None:
        nonlocal sent
        while time.monotonic() < end:
            request = pb.CreateTaskRunRequest.FromString(template)
            request.dynamic_key = uuid.uuid4().hex
            await stub.CreateTaskRun(request, timeout=30)
            sent += 1

    await asyncio.sleep(0.5)
    await asyncio.gather(*(barrage() for _ in range(4)))
    out, _ = await probe.communicate()
    latencies: list[float] = json.loads(out)
    return Row(
        name=f"Health check beside 4 clients of maximal creates ({sent} sent)",
        ops_per_second=float("nan"),
        p50_ms=percentile(latencies, 0.5) * 1000,
        p99_ms=percentile(latencies, 0.99) * 1000,
    )
