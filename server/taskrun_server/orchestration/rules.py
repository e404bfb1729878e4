"""The task-run orchestration rules, one small function each, in the order they apply.

Each rule looks at the context's initial and proposed states and may reject, replace, delay
or abort the proposal, rename it, or note an effect for the service to apply if a state is
stored (take concurrency slots, insert a cache entry). Rules after the first non-ACCEPT
answer do not run. None of this touches gRPC or SQL.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from taskrun_server.domain.states import StateCreate, StateDetails, StateType
from taskrun_server.orchestration.context import TransitionContext
from taskrun_server.orchestration.retries import retry_delay_seconds

Rule = Callable[[TransitionContext], None]

RUNNING = StateType.RUNNING
STOPPING_TYPES = frozenset({StateType.CANCELLING, StateType.PAUSED, StateType.CRASHED})
NO_PENDING_AFTER = frozenset(
    {StateType.PENDING, StateType.RUNNING, StateType.CANCELLING, StateType.CANCELLED}
)


def prevent_duplicate_transitions(ctx: TransitionContext) -> None:
    """A proposal carrying the transition id of the current state was already applied: a client
    retrying after a lost response gets the current state back instead of a second copy."""
    if ctx.proposed is None or ctx.initial is None:
        return
    transition_id = ctx.proposed.state_details.transition_id
    if transition_id is not None and transition_id == ctx.initial.state_details.transition_id:
        ctx.reject(None, "This run has already made this state transition.")


def retrieve_cached_state(ctx: TransitionContext) -> None:
    """A RUNNING proposal whose cache key matches an unexpired COMPLETED state is answered with a
    copy of that state: the work was already done."""
    if ctx.proposed_type is not RUNNING or ctx.proposed is None:
        return
    details = ctx.proposed.state_details
    if not details.cache_key or details.refresh_cache or ctx.cached_state is None:
        return
    cached = ctx.cached_state
    copy = StateCreate(
        type=cached.type,
        name=cached.name,
        message=cached.message,
        state_details=dataclasses.replace(cached.state_details, transition_id=None),
        data=cached.data,
    )
    ctx.reject(copy, "Retrieved state from cache")


def _is_persisted_result(data: Any) -> bool:
    """A completed run keeps its result when its data is anything but an unpersisted marker."""
    if data is None:
        return False
    return not (isinstance(data, dict) and data.get("type") == "unpersisted")


def handle_terminal_state_transitions(ctx: TransitionContext) -> None:
    """A finished run may not crash, pause or start cancelling, and a completed run whose result
    is kept may not run again. Leaving a terminal state otherwise starts the attempts anew."""
    if ctx.initial is None or not ctx.initial.type.is_terminal or ctx.proposed is None:
        return
    if ctx.proposed.type in STOPPING_TYPES:
        ctx.abort(f"Run is already {ctx.initial.type.value}.")
        return
    if ctx.initial.type is StateType.COMPLETED and _is_persisted_result(ctx.initial.data):
        ctx.reject(None, "This run is already completed.")
        return
    if not ctx.proposed.type.is_terminal:
        ctx.run.run_count = 0


def prevent_pending_transitions(ctx: TransitionContext) -> None:
    """PENDING means "about to run": a run that is pending, running or cancelled cannot go back."""
    if ctx.proposed_type is StateType.PENDING and ctx.initial_type in NO_PENDING_AFTER:
        assert ctx.initial_type is not None
        ctx.abort(
            f"This run is in a {ctx.initial_type.value} state and cannot transition to a "
            "PENDING state."
        )


def prevent_running_tasks_from_stopped_flows(ctx: TransitionContext) -> None:
    """A task in a flow run starts only while the flow run is RUNNING; while it is paused, the
    task is asked to wait (as issue #3 specifies) rather than being aborted."""
    if ctx.proposed_type is not RUNNING or ctx.run.flow_run_id is None or ctx.flow_run is None:
        return
    if ctx.flow_run.state_type is StateType.PAUSED:
        ctx.wait(
            timedelta(seconds=ctx.settings.paused_flow_wait_seconds),
            f"The flow run {ctx.run.flow_run_id} is paused; new tasks can run after it resumes.",
        )
    elif ctx.flow_run.state_type is not RUNNING:
        ctx.abort("The enclosing flow run must be running to begin task execution.")


def secure_concurrency_slots(ctx: TransitionContext) -> None:
    """A RUNNING proposal needs a free slot under every limit on the run's tags. Slots are taken
    only if the RUNNING state is stored; a run that already holds a slot keeps it."""
    if ctx.proposed_type is not RUNNING:
        return
    wanted: list[str] = []
    for tag in sorted(set(ctx.run.tags)):
        limit = ctx.limits.get(tag)
        if limit is None or ctx.run.id in limit.active_slots:
            continue
        if limit.concurrency_limit == 0:
            ctx.abort(f"The concurrency limit on tag {tag!r} is 0; runs with this tag cannot run.")
            return
        if len(limit.active_slots) >= limit.concurrency_limit:
            ctx.wait(
                timedelta(seconds=ctx.settings.concurrency_slot_wait_seconds),
                f"Concurrency limit for the {tag!r} tag has been reached.",
            )
            return
        wanted.append(tag)
    ctx.slots_to_take = wanted


def copy_scheduled_time(ctx: TransitionContext) -> None:
    """PENDING inherits the scheduled time of the SCHEDULED state it leaves."""
    if ctx.initial_type is not StateType.SCHEDULED or ctx.proposed_type is not StateType.PENDING:
        return
    assert ctx.initial is not None and ctx.proposed is not None
    if ctx.proposed.state_details.scheduled_time is None:
        ctx.proposed.state_details = dataclasses.replace(
            ctx.proposed.state_details, scheduled_time=ctx.initial.state_details.scheduled_time
        )


def wait_for_scheduled_time(ctx: TransitionContext) -> None:
    """Leaving SCHEDULED for PENDING or RUNNING, or PENDING for RUNNING, before the scheduled
    time is answered WAIT with the time that remains."""
    leaving_scheduled = ctx.initial_type is StateType.SCHEDULED and ctx.proposed_type in (
        StateType.PENDING,
        RUNNING,
    )
    starting = ctx.initial_type is StateType.PENDING and ctx.proposed_type is RUNNING
    if not (leaving_scheduled or starting):
        return
    assert ctx.initial is not None
    scheduled = ctx.initial.state_details.scheduled_time
    if scheduled is not None and scheduled > ctx.now:
        ctx.wait(scheduled - ctx.now, "Scheduled time is in the future.")


def retry_failed_tasks(ctx: TransitionContext) -> None:
    """A run that fails while it has retries left is rescheduled as AwaitingRetry instead."""
    if ctx.initial_type is not RUNNING or ctx.proposed_type is not StateType.FAILED:
        return
    assert ctx.proposed is not None
    if ctx.proposed.state_details.retriable is False:
        return
    retries = ctx.run.empirical_policy.retries or 0
    if ctx.run.run_count > retries:
        return
    delay = retry_delay_seconds(ctx.run.empirical_policy, ctx.run.run_count, ctx.rng)
    retry = StateCreate(
        type=StateType.SCHEDULED,
        name="AwaitingRetry",
        message=ctx.proposed.message,
        data=ctx.proposed.data,
        state_details=StateDetails(scheduled_time=ctx.now + timedelta(seconds=delay)),
    )
    ctx.reject(retry, "Retrying")


def rename_reruns(ctx: TransitionContext) -> None:
    """A run that has run before and starts again is "Retrying"."""
    if ctx.proposed_type is RUNNING and ctx.initial is not None and ctx.run.run_count > 0:
        assert ctx.proposed is not None
        ctx.proposed.name = "Retrying"


def update_flow_run_tracker(ctx: TransitionContext) -> None:
    """A starting task records which attempt of its flow run it belongs to."""
    if ctx.proposed_type is RUNNING and ctx.flow_run is not None:
        ctx.run.flow_run_run_count = ctx.flow_run.run_count


def insert_into_cache(ctx: TransitionContext) -> None:
    """A COMPLETED state with a cache key is remembered for later cache retrieval."""
    if ctx.proposed_type is StateType.COMPLETED and ctx.proposed is not None:
        ctx.insert_into_cache = bool(ctx.proposed.state_details.cache_key)


CORE_TASK_POLICY: tuple[Rule, ...] = (
    prevent_duplicate_transitions,
    retrieve_cached_state,
    handle_terminal_state_transitions,
    prevent_pending_transitions,
    prevent_running_tasks_from_stopped_flows,
    secure_concurrency_slots,
    copy_scheduled_time,
    wait_for_scheduled_time,
    retry_failed_tasks,
    rename_reruns,
    update_flow_run_tracker,
    insert_into_cache,
)
"""The reference's core task policy, in its order (cache retrieval before slots, so a cached
run is answered even when its slots are full)."""


def orchestrate(ctx: TransitionContext, rules: tuple[Rule, ...] = CORE_TASK_POLICY) -> None:
    """Apply the rules in order until one answers something other than ACCEPT."""
    for rule in rules:
        rule(ctx)
        if ctx.decided:
            return
