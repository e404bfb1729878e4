"""TaskWorker: run plain Python functions for the background task runs the server delivers.

    worker = TaskWorker(ClientConfig(target="127.0.0.1:50051"), concurrency=4)

    @worker.task("double")
    def double(x: int) -> int:
        return x * 2

    worker.run()   # until SIGTERM or SIGINT

A run's parameters are the function's keyword arguments; `current_task_run()` gives the run
itself. For each delivery the worker proposes RUNNING (straight from SCHEDULED, as the
reference's task worker does: its PENDING is never sent to the server), calls
the function (sync functions on a thread each, async ones on the loop: `concurrency` bounds
both alike), and
proposes COMPLETED with the result as state data, or FAILED with the exception's type, message
and traceback. Every proposal names the delivery's lease, and a heartbeat renews the leases of
every run the worker holds; when the server answers that a run is being cancelled the function
is stopped and CANCELLED proposed, and when the lease is lost (the worker was too slow to
heartbeat and the run went elsewhere) the function is stopped and nothing proposed. The run's
execution timeout is enforced here too. Records logged inside a task function go to the
server's LogService for that run. WAIT is followed; REJECT and ABORT leave the run to
orchestration (a failure within the retry budget comes back as AwaitingRetry and is delivered
again when due). Proposals the worker's tasks make while one is being sent go together in the
next BatchSetTaskRunStates call (`proposal_batching.py`), each answered as if alone.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

from google.protobuf import json_format

from taskrun.v1 import state_pb2, task_run_pb2
from taskrun.v1 import task_run_service_pb2 as pb
from taskrun_client.async_client import AsyncTaskRunClient
from taskrun_client.config import ClientConfig
from taskrun_client.errors import TaskRunError
from taskrun_client.log_shipping import LogShipper
from taskrun_client.proposal_batching import ProposalBatcher
from taskrun_client.task_execution import Execution, StopReason, TaskFunction

logger = logging.getLogger(__name__)

ACCEPT = pb.SET_STATE_STATUS_ACCEPT
WAIT = pb.SET_STATE_STATUS_WAIT
MAX_LEASES_PER_HEARTBEAT = 1000
FIRST_HEARTBEAT_SECONDS = 1.0
MAX_HEARTBEAT_SECONDS = 10.0


@dataclass(slots=True)
class _HeldRun:
    """A run the worker holds a lease on: delivered, waiting for a slot, or executing."""

    run: task_run_pb2.TaskRun
    lease_id: str
    execution: Execution | None = None
    stop_reason: StopReason | None = None

    def stop(self, reason: StopReason) -> None:
        self.stop_reason = self.stop_reason or reason
        if self.execution is not None:
            self.execution.stop(reason)


@dataclass(slots=True)
class WorkerCounts:
    """What the worker did, for its owner to watch: runs by outcome (the state it stored, as
    a StateType name, or what happened instead: "lost", "not started", "error", ...)."""

    by_outcome: Counter[str] = field(default_factory=Counter)

    @property
    def completed(self) -> int:
        return self.by_outcome["STATE_TYPE_COMPLETED"]

    @property
    def failed(self) -> int:
        return self.by_outcome["STATE_TYPE_FAILED"]

    @property
    def cancelled(self) -> int:
        return self.by_outcome["STATE_TYPE_CANCELLED"]

    @property
    def lost(self) -> int:
        return self.by_outcome["lost"]


class TaskWorker:
    def __init__(
        self,
        config: ClientConfig | None = None,
        *,
        concurrency: int = 4,
        client_id: str = "worker",
        max_backoff: float = 10.0,
        ship_logs: bool = True,
    ) -> None:
        if concurrency < 1:
            raise ValueError("concurrency must be at least 1")
        self.config = config or ClientConfig()
        self.concurrency = concurrency
        self.client_id = client_id
        self.max_backoff = max_backoff
        self.ship_logs = ship_logs
        self.functions: dict[str, TaskFunction] = {}
        self.counts = WorkerCounts()
        self._held: dict[str, _HeldRun] = {}
        self._stopping = asyncio.Event()

    @property
    def completed(self) -> int:
        return self.counts.completed

    @property
    def failed(self) -> int:
        return self.counts.failed

    def task(self, key: str) -> Callable[[TaskFunction], TaskFunction]:
        """Decorator: run this function for task runs whose task_key is `key`."""

        def register(function: TaskFunction) -> TaskFunction:
            self.functions[key] = function
            return function

        return register

    def stop(self) -> None:
        """Stop taking deliveries; runs in progress finish."""
        self._stopping.set()

    def run(self) -> None:
        """Run until SIGTERM or SIGINT (blocking). Logs INFO and above to stderr when the
        program has not configured logging itself."""
        if not logging.getLogger().handlers:
            logging.basicConfig(level=logging.INFO)
        asyncio.run(self.serve(handle_signals=True))

    async def serve(self, *, handle_signals: bool = False) -> None:
        """Subscribe and work until stop(); resubscribe with backoff when the stream breaks."""
        if not self.functions:
            raise ValueError("register at least one task function first")
        if handle_signals:
            loop = asyncio.get_running_loop()
            for sig in (signal.SIGTERM, signal.SIGINT):
                loop.add_signal_handler(sig, self.stop)
        slots = asyncio.Semaphore(self.concurrency)
        running: set[asyncio.Task[None]] = set()
        async with AsyncTaskRunClient(self.config) as client:
            shipper = LogShipper(client) if self.ship_logs else None
            if shipper is not None:
                shipper.start()
            heartbeats = asyncio.create_task(self._heartbeat_forever(client))
            proposals = ProposalBatcher(client)
            try:
                await self._subscribe_until_stopped(client, proposals, slots, running)
                if running:
                    await asyncio.gather(*running, return_exceptions=True)
                await proposals.close()
            finally:
                heartbeats.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await heartbeats
                if shipper is not None:
                    await shipper.stop()

    async def _subscribe_until_stopped(
        self,
        client: AsyncTaskRunClient,
        proposals: ProposalBatcher,
        slots: asyncio.Semaphore,
        running: set[asyncio.Task[None]],
    ) -> None:
        backoff = 0.1
        while not self._stopping.is_set():
            try:
                await self._consume(client, proposals, slots, running)
                backoff = 0.1
            except TaskRunError as error:
                logger.warning("subscription ended (%s); resubscribing", error.code.name)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), backoff)
            backoff = min(backoff * 2, self.max_backoff)

    async def _consume(
        self,
        client: AsyncTaskRunClient,
        proposals: ProposalBatcher,
        slots: asyncio.Semaphore,
        running: set[asyncio.Task[None]],
    ) -> None:
        stream = client.subscribe_scheduled_tasks(
            list(self.functions), prefetch=self.concurrency, client_id=self.client_id
        )
        stop = asyncio.ensure_future(self._stopping.wait())
        try:
            while True:
                following = asyncio.ensure_future(anext(stream))
                done, _ = await asyncio.wait({following, stop}, return_when=asyncio.FIRST_COMPLETED)
                if stop in done:
                    following.cancel()  # unwinds the generator (it cancels the call) ...
                    with contextlib.suppress(asyncio.CancelledError, StopAsyncIteration):
                        await following  # ... which must finish before aclose()
                    return
                try:
                    delivery = following.result()
                except StopAsyncIteration:
                    return
                held = _HeldRun(delivery.task_run, delivery.lease_id)
                self._held[held.run.id] = held  # heartbeats renew it while it waits for a slot
                await slots.acquire()
                task = asyncio.ensure_future(self._execute(proposals, held, slots))
                running.add(task)
                task.add_done_callback(running.discard)
        finally:
            stop.cancel()
            await stream.aclose()

    async def _execute(
        self, proposals: ProposalBatcher, held: _HeldRun, slots: asyncio.Semaphore
    ) -> None:
        """Drive one run from its delivery to its end. Never raises: whatever happens is logged
        and counted, and the slot and the lease are given up."""
        run = held.run
        try:
            outcome = await self._start_and_run(proposals, held)
            if outcome is not None:
                await self._finish(proposals, held, outcome)
            else:
                self._count("lost" if held.stop_reason == "lost" else "not started")
        except TaskRunError as error:
            logger.warning("task run %s: %s", run.id, error)
            self._count("error")
        except Exception:
            logger.exception("task run %s: the worker failed to drive it", run.id)
            self._count("error")
        finally:
            self._held.pop(run.id, None)
            slots.release()

    async def _start_and_run(
        self, proposals: ProposalBatcher, held: _HeldRun
    ) -> state_pb2.StateCreate | None:
        """Propose RUNNING, then run the function. None: nothing to propose."""
        if held.stop_reason is not None:
            return _cancelled_before_start() if held.stop_reason == "cancelled" else None
        # Not marked `deferred`: that selects the reference's background policy, which leaves
        # tag concurrency limits to the client; this worker wants the server to enforce them.
        running = state_pb2.StateCreate(type=state_pb2.STATE_TYPE_RUNNING)
        answer = await self._propose(proposals, held, running)
        if answer.status != ACCEPT:
            cancelling = answer.task_run.state_type == state_pb2.STATE_TYPE_CANCELLING
            return _cancelled_before_start() if cancelling else None
        run = held.run
        policy = run.empirical_policy
        timeout = (
            policy.execution_timeout_seconds
            if policy.HasField("execution_timeout_seconds") and policy.execution_timeout_seconds > 0
            else None
        )
        parameters = json_format.MessageToDict(run.parameters) if run.HasField("parameters") else {}
        held.execution = Execution(self.functions[run.task_key], run, parameters, timeout)
        if held.stop_reason is not None:  # a heartbeat answered while RUNNING was proposed
            held.execution.stop(held.stop_reason)
        return await held.execution.outcome()

    async def _finish(
        self, proposals: ProposalBatcher, held: _HeldRun, outcome: state_pb2.StateCreate
    ) -> None:
        """Propose the outcome; if the server refuses it as a request (too large, say), fail
        the run with that reason instead of leaving it RUNNING."""
        try:
            answer = await self._propose(proposals, held, outcome)
        except TaskRunError as error:
            if error.code.name not in ("INVALID_ARGUMENT", "RESOURCE_EXHAUSTED"):
                raise
            outcome = state_pb2.StateCreate(
                type=state_pb2.STATE_TYPE_FAILED,
                message=f"The task's outcome could not be stored: {error.details}",
            )
            answer = await self._propose(proposals, held, outcome)
        if answer.status == ACCEPT or outcome.type == state_pb2.STATE_TYPE_FAILED:
            # A FAILED outcome answered REJECT was rescheduled for a retry: still a failure.
            self._count(state_pb2.StateType.Name(outcome.type))
        else:
            self._count(pb.SetStateStatus.Name(answer.status))

    def _count(self, outcome: str) -> None:
        self.counts.by_outcome[outcome] += 1

    async def _propose(
        self, proposals: ProposalBatcher, held: _HeldRun, proposal: state_pb2.StateCreate
    ) -> pb.SetTaskRunStateResponse:
        """Propose under the run's lease until the server decides (or, while it answers WAIT,
        until the run is stopped)."""
        while True:
            answer = await proposals.propose(held.run.id, proposal, lease_id=held.lease_id)
            if answer.status not in (ACCEPT, WAIT):
                logger.info(
                    "task run %s: %s (%s)",
                    held.run.id,
                    pb.SetStateStatus.Name(answer.status),
                    answer.details.reason,
                )
            if answer.status != WAIT or held.stop_reason is not None:
                return answer
            # Each call copies the proposal and gives the copy a fresh transition id.
            await asyncio.sleep(max(answer.details.delay.ToTimedelta().total_seconds(), 0.01))

    async def _heartbeat_forever(self, client: AsyncTaskRunClient) -> None:
        """Renew the leases of every held run, as often as the server asks; stop the runs it
        says are being cancelled or are no longer ours."""
        interval = FIRST_HEARTBEAT_SECONDS
        while True:
            await asyncio.sleep(interval)
            held = list(self._held.values())
            if not held:
                interval = FIRST_HEARTBEAT_SECONDS
                continue
            try:
                interval = await self._heartbeat(client, held)
            except TaskRunError as error:
                logger.warning("heartbeat failed (%s); trying again", error.code.name)
                interval = FIRST_HEARTBEAT_SECONDS

    async def _heartbeat(self, client: AsyncTaskRunClient, held: list[_HeldRun]) -> float:
        interval = MAX_HEARTBEAT_SECONDS
        for start in range(0, len(held), MAX_LEASES_PER_HEARTBEAT):
            chunk = held[start : start + MAX_LEASES_PER_HEARTBEAT]
            response = await client.heartbeat_task_runs([(h.run.id, h.lease_id) for h in chunk])
            for result in response.results:
                run = self._held.get(result.task_run_id)
                if run is None:
                    continue
                if result.status == pb.LEASE_STATUS_CANCELLING:
                    run.stop("cancelled")
                elif result.status == pb.LEASE_STATUS_LOST:
                    run.stop("lost")
            interval = min(interval, response.next_heartbeat.ToTimedelta().total_seconds())
        return min(max(interval, 0.1), MAX_HEARTBEAT_SECONDS)


def _cancelled_before_start() -> state_pb2.StateCreate:
    return state_pb2.StateCreate(
        type=state_pb2.STATE_TYPE_CANCELLED, message="Cancelled before it started."
    )
