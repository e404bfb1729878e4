"""Each orchestration rule, as a pure function: when it fires and when it does not."""

from __future__ import annotations

import random
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from taskrun_server.domain.concurrency_limits import ConcurrencyLimit
from taskrun_server.domain.states import State, StateCreate, StateDetails, StateType
from taskrun_server.domain.task_runs import TaskRun, TaskRunPolicy
from taskrun_server.orchestration.context import FlowRunFacts, SetStateStatus, TransitionContext
from taskrun_server.orchestration.rules import (
    BACKGROUND_TASK_POLICY,
    CORE_TASK_POLICY,
    copy_scheduled_time,
    copy_task_parameters_id,
    handle_terminal_state_transitions,
    insert_into_cache,
    orchestrate,
    policy_for,
    prevent_duplicate_transitions,
    prevent_pending_transitions,
    prevent_running_tasks_from_stopped_flows,
    rename_reruns,
    retrieve_cached_state,
    retry_failed_tasks,
    secure_concurrency_slots,
    update_flow_run_tracker,
    wait_for_scheduled_time,
)

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
S = StateType


def state(kind: StateType, **details: object) -> State:
    return State(
        id=uuid.uuid4(),
        task_run_id=uuid.uuid4(),
        type=kind,
        name=kind.default_name,
        timestamp=NOW - timedelta(minutes=1),
        state_details=StateDetails(**details),  # type: ignore[arg-type]
    )


def context(
    initial: StateType | State | None,
    proposed: StateType,
    *,
    run: TaskRun | None = None,
    **details: object,
) -> TransitionContext:
    initial_state = state(initial) if isinstance(initial, StateType) else initial
    run = run or TaskRun(
        id=uuid.uuid4(), created=NOW, updated=NOW, name="r", flow_run_id=None, task_key="k",
        dynamic_key="0",
    )  # fmt: skip
    return TransitionContext(
        run=run,
        initial=initial_state,
        proposed=StateCreate(type=proposed, state_details=StateDetails(**details)),  # type: ignore[arg-type]
        now=NOW,
        rng=random.Random(7),
    )


# -- duplicate transitions ----------------------------------------------------------------------


def test_a_repeated_transition_id_is_rejected_with_nothing_stored() -> None:
    tid = uuid.uuid4()
    ctx = context(state(S.RUNNING, transition_id=tid), S.COMPLETED, transition_id=tid)
    prevent_duplicate_transitions(ctx)
    assert ctx.status is SetStateStatus.REJECT and ctx.proposed is None


def test_a_new_transition_id_passes() -> None:
    ctx = context(
        state(S.RUNNING, transition_id=uuid.uuid4()), S.COMPLETED, transition_id=uuid.uuid4()
    )
    prevent_duplicate_transitions(ctx)
    assert ctx.status is SetStateStatus.ACCEPT


# -- cache ---------------------------------------------------------------------------------------


def test_cache_hit_replaces_running_with_a_copy_of_the_completed_state() -> None:
    cached = state(S.COMPLETED, cache_key="k")
    cached.data = {"value": 42}
    ctx = context(S.PENDING, S.RUNNING, cache_key="k")
    ctx.cached_state = cached
    retrieve_cached_state(ctx)
    assert ctx.status is SetStateStatus.REJECT
    assert ctx.proposed is not None and ctx.proposed.type is S.COMPLETED
    assert ctx.proposed.data == {"value": 42} and ctx.proposed.name == "Cached"


def test_refresh_cache_skips_retrieval() -> None:
    ctx = context(S.PENDING, S.RUNNING, cache_key="k", refresh_cache=True)
    ctx.cached_state = state(S.COMPLETED)
    retrieve_cached_state(ctx)
    assert ctx.status is SetStateStatus.ACCEPT


def test_no_cached_state_means_no_retrieval() -> None:
    ctx = context(S.PENDING, S.RUNNING, cache_key="k")
    retrieve_cached_state(ctx)
    assert ctx.status is SetStateStatus.ACCEPT


def test_completed_with_cache_key_is_inserted_and_without_is_not() -> None:
    keyed = context(S.RUNNING, S.COMPLETED, cache_key="k")
    plain = context(S.RUNNING, S.COMPLETED)
    insert_into_cache(keyed)
    insert_into_cache(plain)
    assert keyed.insert_into_cache and not plain.insert_into_cache


# -- terminal states -----------------------------------------------------------------------------


@pytest.mark.parametrize("proposed", [S.CANCELLING, S.PAUSED, S.CRASHED])
def test_finished_runs_cannot_stop_again(proposed: StateType) -> None:
    ctx = context(S.FAILED, proposed)
    handle_terminal_state_transitions(ctx)
    assert ctx.status is SetStateStatus.ABORT


def test_completed_run_with_a_result_cannot_rerun() -> None:
    done = state(S.COMPLETED)
    done.data = {"result": 1}
    ctx = context(done, S.RUNNING)
    handle_terminal_state_transitions(ctx)
    assert ctx.status is SetStateStatus.REJECT and ctx.proposed is None


def test_leaving_a_terminal_state_resets_the_run_count() -> None:
    ctx = context(S.FAILED, S.SCHEDULED)
    ctx.run.run_count = 3
    handle_terminal_state_transitions(ctx)
    assert ctx.status is SetStateStatus.ACCEPT and ctx.run.run_count == 0


def test_non_terminal_initial_states_are_left_alone() -> None:
    ctx = context(S.RUNNING, S.CRASHED)
    handle_terminal_state_transitions(ctx)
    assert ctx.status is SetStateStatus.ACCEPT


# -- pending -------------------------------------------------------------------------------------


@pytest.mark.parametrize("initial", [S.PENDING, S.RUNNING, S.CANCELLING, S.CANCELLED])
def test_no_pending_after(initial: StateType) -> None:
    ctx = context(initial, S.PENDING)
    prevent_pending_transitions(ctx)
    assert ctx.status is SetStateStatus.ABORT


@pytest.mark.parametrize("initial", [None, S.SCHEDULED, S.FAILED])
def test_pending_allowed_after(initial: StateType | None) -> None:
    ctx = context(initial, S.PENDING)
    prevent_pending_transitions(ctx)
    assert ctx.status is SetStateStatus.ACCEPT


def test_a_renamed_pending_after_pending_is_a_sub_state_and_passes() -> None:
    due = NOW - timedelta(minutes=5)
    ctx = context(state(S.PENDING, scheduled_time=due), S.PENDING)
    assert ctx.proposed is not None
    ctx.proposed.name = "Submitting"
    prevent_pending_transitions(ctx)
    assert ctx.status is SetStateStatus.ACCEPT
    assert ctx.proposed.state_details.scheduled_time == due
    plain = context(S.PENDING, S.PENDING)
    assert plain.proposed is not None
    plain.proposed.name = "Pending"
    prevent_pending_transitions(plain)
    assert plain.status is SetStateStatus.ABORT


def test_the_pending_guard_belongs_to_the_background_policy_only() -> None:
    assert prevent_pending_transitions not in CORE_TASK_POLICY
    assert prevent_pending_transitions in BACKGROUND_TASK_POLICY
    deferred = StateCreate(type=S.PENDING, state_details=StateDetails(deferred=True))
    assert policy_for(deferred, force=True) is BACKGROUND_TASK_POLICY
    assert policy_for(StateCreate(type=S.PENDING), force=True) == ()
    assert policy_for(StateCreate(type=S.PENDING), force=False) is CORE_TASK_POLICY
    assert secure_concurrency_slots not in BACKGROUND_TASK_POLICY
    assert prevent_running_tasks_from_stopped_flows not in BACKGROUND_TASK_POLICY


def test_a_deferred_run_carries_its_parameters_id_into_running() -> None:
    parameters = uuid.uuid4()
    ctx = context(state(S.SCHEDULED, task_parameters_id=parameters), S.RUNNING)
    copy_task_parameters_id(ctx)
    assert ctx.proposed is not None
    assert ctx.proposed.state_details.task_parameters_id == parameters


# -- flow runs -----------------------------------------------------------------------------------


def in_flow(flow_state: StateType) -> TransitionContext:
    ctx = context(S.PENDING, S.RUNNING)
    ctx.run.flow_run_id = uuid.uuid4()
    ctx.flow_run = FlowRunFacts(state_type=flow_state, run_count=2)
    return ctx


def test_task_cannot_start_in_a_flow_run_that_is_not_running() -> None:
    ctx = in_flow(S.PENDING)
    prevent_running_tasks_from_stopped_flows(ctx)
    assert ctx.status is SetStateStatus.ABORT


def test_a_task_starting_in_a_paused_flow_run_is_put_in_a_not_ready_pause() -> None:
    ctx = in_flow(S.PAUSED)
    prevent_running_tasks_from_stopped_flows(ctx)
    assert ctx.status is SetStateStatus.REJECT and ctx.proposed is not None
    assert (ctx.proposed.type, ctx.proposed.name) == (S.PAUSED, "NotReady")


def test_rerunning_in_a_retrying_flow_run_is_named_retrying() -> None:
    ctx = context(S.COMPLETED, S.RUNNING)
    ctx.run.flow_run_id = uuid.uuid4()
    ctx.run.flow_run_run_count = 1
    ctx.flow_run = FlowRunFacts(state_type=S.RUNNING, run_count=2)
    handle_terminal_state_transitions(ctx)
    assert ctx.proposed is not None and ctx.proposed.name == "Retrying"


def test_task_starts_in_a_running_flow_run_and_records_its_attempt() -> None:
    ctx = in_flow(S.RUNNING)
    orchestrate(ctx, (prevent_running_tasks_from_stopped_flows, update_flow_run_tracker))
    assert ctx.status is SetStateStatus.ACCEPT and ctx.run.flow_run_run_count == 2


# -- concurrency slots ---------------------------------------------------------------------------


def limited(tags: list[str], limits: dict[str, tuple[int, int]]) -> TransitionContext:
    ctx = context(S.PENDING, S.RUNNING)
    ctx.run.tags = tags
    ctx.limits = {
        tag: ConcurrencyLimit(
            id=uuid.uuid4(), created=NOW, updated=NOW, tag=tag, concurrency_limit=limit,
            active_slots=[uuid.uuid4() for _ in range(taken)],
        )
        for tag, (limit, taken) in limits.items()
    }  # fmt: skip
    return ctx


def test_free_slots_are_claimed_for_every_limited_tag() -> None:
    ctx = limited(["db", "api", "free"], {"db": (2, 1), "api": (1, 0)})
    secure_concurrency_slots(ctx)
    assert ctx.status is SetStateStatus.ACCEPT and ctx.slots_to_take == ["api", "db"]


def test_a_full_limit_makes_the_run_wait() -> None:
    ctx = limited(["db"], {"db": (1, 1)})
    secure_concurrency_slots(ctx)
    assert ctx.status is SetStateStatus.WAIT and ctx.delay == timedelta(seconds=30)


def test_a_zero_limit_aborts() -> None:
    ctx = limited(["db"], {"db": (0, 0)})
    secure_concurrency_slots(ctx)
    assert ctx.status is SetStateStatus.ABORT


def test_a_run_holding_its_slot_keeps_it() -> None:
    ctx = limited(["db"], {"db": (1, 0)})
    ctx.limits["db"].active_slots.append(ctx.run.id)
    secure_concurrency_slots(ctx)
    assert ctx.status is SetStateStatus.ACCEPT and ctx.slots_to_take == []


# -- scheduled time ------------------------------------------------------------------------------


def test_pending_copies_the_scheduled_time() -> None:
    due = NOW - timedelta(seconds=5)
    ctx = context(state(S.SCHEDULED, scheduled_time=due), S.PENDING)
    copy_scheduled_time(ctx)
    assert ctx.proposed is not None and ctx.proposed.state_details.scheduled_time == due


@pytest.mark.parametrize("initial", [S.SCHEDULED, S.PENDING])
def test_starting_early_waits_for_the_remaining_time(initial: StateType) -> None:
    ctx = context(state(initial, scheduled_time=NOW + timedelta(seconds=90)), S.RUNNING)
    wait_for_scheduled_time(ctx)
    assert ctx.status is SetStateStatus.WAIT and ctx.delay == timedelta(seconds=90)


def test_leaving_scheduled_early_for_pending_does_not_wait() -> None:
    ctx = context(state(S.SCHEDULED, scheduled_time=NOW + timedelta(seconds=90)), S.PENDING)
    wait_for_scheduled_time(ctx)
    assert ctx.status is SetStateStatus.ACCEPT


@pytest.mark.parametrize(("left", "waits"), [(0.4, None), (0.6, 1), (1.4, 1), (2.5, 2), (2.6, 3)])
def test_the_wait_is_rounded_to_whole_seconds(left: float, waits: int | None) -> None:
    """Whole seconds plus the fraction rounded half to even, as the reference computes it."""
    ctx = context(state(S.SCHEDULED, scheduled_time=NOW + timedelta(seconds=left)), S.RUNNING)
    wait_for_scheduled_time(ctx)
    assert (ctx.delay.total_seconds() if ctx.delay is not None else None) == waits


def test_leaving_on_time_or_for_cancellation_does_not_wait() -> None:
    on_time = context(state(S.SCHEDULED, scheduled_time=NOW - timedelta(seconds=1)), S.PENDING)
    cancel = context(state(S.SCHEDULED, scheduled_time=NOW + timedelta(hours=1)), S.CANCELLED)
    wait_for_scheduled_time(on_time)
    wait_for_scheduled_time(cancel)
    assert on_time.status is SetStateStatus.ACCEPT and cancel.status is SetStateStatus.ACCEPT


# -- retries -------------------------------------------------------------------------------------


def failing(run_count: int, policy: TaskRunPolicy, **details: Any) -> TransitionContext:
    ctx = context(S.RUNNING, S.FAILED, **details)
    ctx.run.run_count = run_count
    ctx.run.empirical_policy = policy
    return ctx


def test_failure_within_budget_becomes_awaiting_retry_after_the_delay() -> None:
    ctx = failing(1, TaskRunPolicy(retries=2, retry_delay=[10, 60]))
    retry_failed_tasks(ctx)
    assert ctx.status is SetStateStatus.REJECT and ctx.proposed is not None
    assert (ctx.proposed.type, ctx.proposed.name) == (S.SCHEDULED, "AwaitingRetry")
    assert ctx.proposed.state_details.scheduled_time == NOW + timedelta(seconds=10)


def test_the_delay_list_is_indexed_by_attempt() -> None:
    ctx = failing(2, TaskRunPolicy(retries=5, retry_delay=[10, 60]))
    retry_failed_tasks(ctx)
    assert ctx.proposed is not None
    assert ctx.proposed.state_details.scheduled_time == NOW + timedelta(seconds=60)


def test_failure_past_the_budget_is_accepted() -> None:
    ctx = failing(3, TaskRunPolicy(retries=2))
    retry_failed_tasks(ctx)
    assert ctx.status is SetStateStatus.ACCEPT


def test_a_non_retriable_failure_is_accepted() -> None:
    ctx = failing(1, TaskRunPolicy(retries=2), retriable=False)
    retry_failed_tasks(ctx)
    assert ctx.status is SetStateStatus.ACCEPT


def test_reruns_are_retrying_after_awaiting_retry_and_rerunning_otherwise() -> None:
    awaiting = state(S.SCHEDULED)
    awaiting.name = "AwaitingRetry"
    retry = context(awaiting, S.RUNNING)
    rerun = context(S.SCHEDULED, S.RUNNING)
    first = context(S.PENDING, S.RUNNING)
    retry.run.run_count = rerun.run.run_count = 1
    for ctx in (retry, rerun, first):
        rename_reruns(ctx)
    assert retry.proposed is not None and retry.proposed.name == "Retrying"
    assert rerun.proposed is not None and rerun.proposed.name == "Rerunning"
    assert first.proposed is not None and first.proposed.name is None


def test_rules_stop_after_the_first_answer_other_than_accept() -> None:
    ctx = context(S.RUNNING, S.PENDING, deferred=True)
    orchestrate(ctx, (prevent_pending_transitions, insert_into_cache))
    assert ctx.status is SetStateStatus.ABORT and ctx.reason is not None
