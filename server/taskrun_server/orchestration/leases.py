"""Execution leases: who may drive a run and until when, and what becomes of a run whose worker
went quiet or whose attempt ran too long.

A delivery leases a SCHEDULED run to a subscriber. The lease outlives the hand-off: while the
worker that presents it moves the run through PENDING and RUNNING (and CANCELLING), it is an
execution lease, renewed by heartbeat. A proposal that names a lease the run no longer holds is
refused, so a worker that was frozen or cut off cannot overwrite what happened since (fencing).
When a lease lapses, or a RUNNING attempt passes its execution deadline, the reaper takes the
run back with `reap`. Everything here is pure: the service locks, calls, and stores.
"""

from __future__ import annotations

import random
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

from taskrun_server.domain.identifiers import new_id
from taskrun_server.domain.states import State, StateCreate, StateDetails, StateType
from taskrun_server.domain.task_runs import RunLease, TaskRun, TaskRunPolicy
from taskrun_server.orchestration.retries import retry_delay_seconds

EXECUTING = frozenset({StateType.PENDING, StateType.RUNNING, StateType.CANCELLING})
"""States in which a run's worker holds an execution lease."""
STARTING = frozenset({StateType.PENDING, StateType.RUNNING})

MIN_HEARTBEAT_INTERVAL = timedelta(milliseconds=100)
MAX_HEARTBEAT_INTERVAL = timedelta(seconds=60)
IDLE_HEARTBEAT_INTERVAL = timedelta(seconds=10)


@dataclass(slots=True, frozen=True)
class LeaseSettings:
    """Server defaults for runs whose policy leaves the timeouts unset. None means never."""

    heartbeat_timeout: timedelta | None = timedelta(seconds=30)
    execution_timeout: timedelta | None = None


def timeout_or_never(seconds: float) -> timedelta | None:
    """A timeout from its seconds: zero means never (None)."""
    return timedelta(seconds=seconds) if seconds > 0 else None


def _seconds_or_default(seconds: float | None, default: timedelta | None) -> timedelta | None:
    return default if seconds is None else timeout_or_never(seconds)


def heartbeat_timeout(policy: TaskRunPolicy, settings: LeaseSettings) -> timedelta | None:
    """How long the run's worker may stay silent; None: its lease never lapses."""
    return _seconds_or_default(policy.heartbeat_timeout_seconds, settings.heartbeat_timeout)


def execution_timeout(policy: TaskRunPolicy, settings: LeaseSettings) -> timedelta | None:
    """How long one attempt may stay RUNNING; None: as long as it likes."""
    return _seconds_or_default(policy.execution_timeout_seconds, settings.execution_timeout)


def fence(run: TaskRun, caller_lease: uuid.UUID | None, proposed: StateCreate) -> str | None:
    """Why a proposal made under `caller_lease` must be refused, or None to let it through.

    A caller that names no lease is not checked (operators, flow engines, older clients). A
    retry of the caller's own last proposal, already applied, passes: the duplicate-transition
    rule answers it, even though that proposal may have ended the lease. The holder of a run
    that is being cancelled may only end it: starting it would lose the cancellation, which it
    hears of at its next heartbeat.
    """
    if caller_lease is None:
        return None
    if run.lease is not None and run.lease.id == caller_lease:
        if run.state_type is StateType.CANCELLING and not proposed.type.is_terminal:
            return "The run is being cancelled: stop it and propose CANCELLED."
        return None
    transition_id = proposed.state_details.transition_id
    current = run.state
    if (
        transition_id is not None
        and current is not None
        and current.state_details.transition_id == transition_id
    ):
        return None
    return (
        f"Lease {caller_lease} on this run is no longer held: it lapsed or the run was "
        f"delivered again, and the run is now {run.state_type or 'without a state'}."
    )


@dataclass(slots=True, frozen=True)
class LeaseTerms:
    """The run's lease and execution deadline after a stored state, and the lease the caller
    holds from now on (to renew by heartbeat), if any."""

    lease: RunLease | None
    execution_deadline: datetime | None
    caller_lease: uuid.UUID | None


def lease_after(
    run: TaskRun,
    state: State,
    *,
    caller_lease: uuid.UUID | None,
    now: datetime,
    settings: LeaseSettings,
) -> LeaseTerms:
    """The lease terms once `state` is stored. `run` still carries its state before it.

    - Leaving the executing states (for SCHEDULED, a terminal state, PAUSED) ends the lease.
    - The holder presenting its lease keeps it, renewed for a full heartbeat timeout.
    - A caller without the lease settling a delivery (SCHEDULED to anything but CANCELLING)
      ends it: an older worker that names no lease would never heartbeat it.
    - Anyone else (an operator cancelling a delivered or running run) leaves it as it is: the
      worker learns of the change at its next heartbeat, and if it is gone the lease lapses
      and the reaper ends the run.
    - A run with no lease entering PENDING or RUNNING takes one when its policy asks for
      heartbeats (a timeout above zero), granted to this caller.
    """
    deadline = _execution_deadline(run, state, now, settings)
    if state.type not in EXECUTING:
        return LeaseTerms(None, None, None)
    held = run.lease
    if held is not None and caller_lease == held.id:
        renewed = RunLease(held.id, held.owner, _expiry(run, now, settings), renewed_at=now)
        return LeaseTerms(renewed, deadline, held.id)
    settling = run.state_type is StateType.SCHEDULED and state.type is not StateType.CANCELLING
    if held is not None and not settling:
        return LeaseTerms(held, deadline, None)
    wanted = run.empirical_policy.heartbeat_timeout_seconds
    if state.type in STARTING and wanted is not None and wanted > 0:
        granted = RunLease(new_id(), None, _expiry(run, now, settings), renewed_at=now)
        return LeaseTerms(granted, deadline, granted.id)
    return LeaseTerms(None, deadline, None)


def _expiry(run: TaskRun, now: datetime, settings: LeaseSettings) -> datetime | None:
    timeout = heartbeat_timeout(run.empirical_policy, settings)
    return now + timeout if timeout is not None else None


def _execution_deadline(
    run: TaskRun, state: State, now: datetime, settings: LeaseSettings
) -> datetime | None:
    """Set on entering RUNNING, kept while it stays RUNNING, cleared on leaving it."""
    if state.type is not StateType.RUNNING:
        return None
    if run.state_type is StateType.RUNNING:
        return run.execution_deadline
    timeout = execution_timeout(run.empirical_policy, settings)
    return now + timeout if timeout is not None else None


@dataclass(slots=True, frozen=True)
class Reaping:
    """What the reaper proposes for a run it takes back. `orchestrated`: through the task
    policy's rules (a timeout is a failure like any other, so the retry rule decides);
    otherwise forced, with the bookkeeping every stored state gets."""

    proposal: StateCreate
    orchestrated: bool


def reap(
    run: TaskRun, now: datetime, settings: LeaseSettings, rng: random.Random
) -> Reaping | None:
    """The state a run gets when its attempt timed out or its worker is gone, or None when
    neither holds any more (a heartbeat or a proposal came first)."""
    deadline = run.execution_deadline
    if run.state_type is StateType.RUNNING and deadline is not None and deadline <= now:
        timeout = execution_timeout(run.empirical_policy, settings)
        limit = f" of {timeout.total_seconds():g}s" if timeout is not None else ""
        return Reaping(
            StateCreate(
                type=StateType.FAILED,
                name="TimedOut",
                message=f"The attempt ran longer than its execution timeout{limit}.",
            ),
            orchestrated=True,
        )
    lease = run.lease
    if run.state_type not in EXECUTING or lease is None or lease.expires_at is None:
        return None
    if lease.expires_at > now:
        return None
    return Reaping(_after_lost_worker(run, now, settings, rng), orchestrated=False)


def _after_lost_worker(
    run: TaskRun, now: datetime, settings: LeaseSettings, rng: random.Random
) -> StateCreate:
    timeout = heartbeat_timeout(run.empirical_policy, settings)
    silence = f" for {timeout.total_seconds():g}s" if timeout is not None else ""
    lost = f"Its worker stopped heartbeating{silence}"
    if run.state_type is StateType.CANCELLING:
        return StateCreate(type=StateType.CANCELLED, message=f"{lost} while cancelling.")
    if run.state_type is StateType.PENDING:
        # It never started this attempt, so no retry is spent: it is simply delivered again.
        return _awaiting_retry(now, f"{lost} before the run started; delivering it again.")
    retries = run.empirical_policy.retries or 0
    if run.run_count <= retries:
        delay = retry_delay_seconds(run.empirical_policy, run.run_count, rng)
        return _awaiting_retry(
            now + timedelta(seconds=delay), f"{lost}; retry {run.run_count} of {retries}."
        )
    return StateCreate(type=StateType.CRASHED, message=f"{lost}; no retries left.")


def _awaiting_retry(when: datetime, message: str) -> StateCreate:
    return StateCreate(
        type=StateType.SCHEDULED,
        name="AwaitingRetry",
        message=message,
        state_details=StateDetails(scheduled_time=when),
    )


def next_heartbeat(remaining: list[timedelta]) -> timedelta:
    """When a worker should heartbeat next: within a third of its shortest remaining lease, so
    that two heartbeats may be lost before any lease lapses."""
    if not remaining:
        return IDLE_HEARTBEAT_INTERVAL
    third = min(remaining) / 3
    return min(max(third, MIN_HEARTBEAT_INTERVAL), MAX_HEARTBEAT_INTERVAL)
