"""The task-run orchestration rules, one small function each, in the order they apply.

Each rule looks at the context's initial and proposed states and may reject, replace, delay
or abort the proposal, rename it, or note an effect for the service to apply if a state is
stored (take concurrency slots, insert a cache entry). Rules after the first non-ACCEPT
answer do not run. None of this touches gRPC or SQL.
"""

from __future__ import annotations

import dataclasses
import math
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
        name="Cached",
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
    flow_run = ctx.flow_run
    flow_retrying = flow_run is not None and ctx.run.flow_run_run_count < flow_run.run_count
    if ctx.proposed.type is RUNNING and flow_retrying:
        ctx.proposed.name = "Retrying"


def prevent_pending_transitions(ctx: TransitionContext) -> None:
    """PENDING means "about to run": a run that is pending, running or cancelled cannot go back
    (so two workers cannot both submit it). A renamed PENDING after PENDING ("Submitting") is a
    named sub-state and passes, keeping the scheduled time. Background policy only."""
    if ctx.proposed_type is not StateType.PENDING or ctx.initial_type not in NO_PENDING_AFTER:
        return
    assert ctx.initial is not None and ctx.proposed is not None
    name = ctx.proposed.name or StateType.PENDING.default_name
    if ctx.initial.type is StateType.PENDING and name not in (ctx.initial.name, "Pending"):
        ctx.proposed.state_details = dataclasses.replace(
            ctx.proposed.state_details, scheduled_time=ctx.initial.state_details.scheduled_time
        )
        return
    ctx.abort(
        f"This run is in a {ctx.initial.type.value} state and cannot transition to a PENDING state."
    )


def prevent_running_tasks_from_stopped_flows(ctx: TransitionContext) -> None:
    """A task in a flow run starts only while the flow run is RUNNING; while it is paused, the
    task is asked to wait (as issue #3 specifies) rather than being aborted."""
    if ctx.proposed_type is not RUNNING or ctx.run.flow_run_id is None or ctx.flow_run is None:
        return
    if ctx.flow_run.state_type is StateType.PAUSED:
        ctx.reject(
            StateCreate(type=StateType.PAUSED, name="NotReady"),
            "The flow is paused, new tasks can execute after resuming flow run: "
            f"{ctx.run.flow_run_id}.",
        )
    elif ctx.flow_run.state_type is not RUNNING:
        ctx.abort("The enclosing flow must be running to begin task execution.")


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


def copy_task_parameters_id(ctx: TransitionContext) -> None:
    """A deferred run keeps the reference to its parameters from SCHEDULED through PENDING to
    RUNNING, unless the proposal names its own. Background policy only."""
    if ctx.initial_type not in (StateType.SCHEDULED, StateType.PENDING):
        return
    if ctx.proposed_type not in (StateType.PENDING, RUNNING):
        return
    assert ctx.initial is not None and ctx.proposed is not None
    if ctx.proposed.state_details.task_parameters_id is None:
        ctx.proposed.state_details = dataclasses.replace(
            ctx.proposed.state_details,
            task_parameters_id=ctx.initial.state_details.task_parameters_id,
        )


def wait_for_scheduled_time(ctx: TransitionContext) -> None:
    """Starting (RUNNING) from SCHEDULED or PENDING before the scheduled time is answered WAIT
    with the whole seconds that remain, rounded as the reference does: under half a second
    left is no wait at all. Leaving SCHEDULED for PENDING early is fine."""
    if ctx.proposed_type is not RUNNING:
        return
    if ctx.initial_type not in (StateType.SCHEDULED, StateType.PENDING):
        return
    assert ctx.initial is not None
    scheduled = ctx.initial.state_details.scheduled_time
    if scheduled is None:
        return
    remaining = scheduled - ctx.now
    seconds = math.floor(remaining.total_seconds()) + round(remaining.microseconds / 1e6)
    if seconds > 0:
        ctx.wait(timedelta(seconds=seconds), "Scheduled time is in the future")


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
    """A run that has run before and starts again is "Retrying" after an AwaitingRetry state,
    and "Rerunning" after anything else."""
    if ctx.proposed_type is RUNNING and ctx.initial is not None and ctx.run.run_count > 0:
        assert ctx.proposed is not None
        ctx.proposed.name = "Retrying" if ctx.initial.name == "AwaitingRetry" else "Rerunning"


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
run is answered even when its slots are full), after taskrun's duplicate-transition guard."""

BACKGROUND_TASK_POLICY: tuple[Rule, ...] = (
    prevent_duplicate_transitions,
    prevent_pending_transitions,
    retrieve_cached_state,
    handle_terminal_state_transitions,
    copy_scheduled_time,
    copy_task_parameters_id,
    wait_for_scheduled_time,
    retry_failed_tasks,
    rename_reruns,
    update_flow_run_tracker,
    insert_into_cache,
)
"""The reference's policy for deferred (background) runs, chosen by `state_details.deferred`
on the proposal, `force` or not: the PENDING guard, parameters carried along, and neither
tag concurrency nor the enclosing flow run's state checked."""


def policy_for(proposed: StateCreate, force: bool) -> tuple[Rule, ...]:
    """The rules a proposal goes through: background for deferred proposals (even forced, as in
    the reference), none for other forced ones, the core policy otherwise."""
    if proposed.state_details.deferred:
        return BACKGROUND_TASK_POLICY
    return () if force else CORE_TASK_POLICY


def orchestrate(ctx: TransitionContext, rules: tuple[Rule, ...] = CORE_TASK_POLICY) -> None:
    """Apply the rules in order until one answers something other than ACCEPT."""
    for rule in rules:
        rule(ctx)
        if ctx.decided:
            return
