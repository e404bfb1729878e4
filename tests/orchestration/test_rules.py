"""Each orchestration rule, as a pure function: when it fires and when it does not."""

from __future__ import annotations

import dataclasses
import random
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from taskrun_server.domain.concurrency_limits import ConcurrencyLimit
from taskrun_server.domain.states import State, StateCreate, StateDetails, StateType
from taskrun_server.domain.task_runs import TaskRun, TaskRunPolicy
from taskrun_server.orchestration.decision import (
    Facts,
    FlowRunFacts,
    OrchestrationSettings,
    Proposal,
    SetStateStatus,
)
from taskrun_server.orchestration.rules import (
    Step,
    copy_scheduled_time,
    copy_task_parameters_id,
    handle_terminal_state_transitions,
    insert_into_cache,
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


def state(kind: StateType, name: str | None = None, **details: object) -> State:
    return State(
        id=uuid.uuid4(),
        task_run_id=uuid.uuid4(),
        type=kind,
        name=name or kind.default_name,
        timestamp=NOW - timedelta(minutes=1),
        state_details=StateDetails(**details),  # type: ignore[arg-type]
    )


def new_run(initial: State | None = None, **fields: Any) -> TaskRun:
    run = TaskRun(
        id=uuid.uuid4(), created=NOW, updated=NOW, name="r", flow_run_id=None, task_key="k",
        dynamic_key="0",
    )  # fmt: skip
    run.state = initial
    run.state_type = initial.type if initial is not None else None
    return dataclasses.replace(run, **fields)


def step(
    initial: StateType | State | None,
    proposed: StateType,
    *,
    run: dict[str, Any] | None = None,
    facts: Facts | None = None,
    name: str | None = None,
    **details: object,
) -> Step:
    """A proposal from `initial` to `proposed`, before any rule has looked at it."""
    initial_state = state(initial) if isinstance(initial, StateType) else initial
    proposal = Proposal(
        run=new_run(initial_state, **(run or {})),
        proposed=StateCreate(type=proposed, name=name, state_details=StateDetails(**details)),  # type: ignore[arg-type]
        now=NOW,
    )
    return Step(
        proposal=proposal,
        facts=facts or Facts(),
        settings=OrchestrationSettings(),
        rng=random.Random(7),
        proposed=proposal.proposed,
    )


def stored(after: Step) -> StateCreate:
    assert after.proposed is not None
    return after.proposed


# -- duplicate transitions ----------------------------------------------------------------------


def test_a_repeated_transition_id_is_rejected_with_nothing_stored() -> None:
    tid = uuid.uuid4()
    after = prevent_duplicate_transitions(
        step(state(S.RUNNING, transition_id=tid), S.COMPLETED, transition_id=tid)
    )
    assert after.status is SetStateStatus.REJECT and after.proposed is None


def test_a_new_transition_id_passes() -> None:
    before = step(
        state(S.RUNNING, transition_id=uuid.uuid4()), S.COMPLETED, transition_id=uuid.uuid4()
    )
    assert prevent_duplicate_transitions(before) is before


# -- cache ---------------------------------------------------------------------------------------


def test_cache_hit_replaces_running_with_a_copy_named_cached() -> None:
    cached = state(S.COMPLETED, cache_key="k")
    cached.data = {"value": 42}
    after = retrieve_cached_state(
        step(S.PENDING, S.RUNNING, facts=Facts(cached_state=cached), cache_key="k")
    )
    assert after.status is SetStateStatus.REJECT
    assert (stored(after).type, stored(after).name) == (S.COMPLETED, "Cached")
    assert stored(after).data == {"value": 42}


def test_refresh_cache_skips_retrieval() -> None:
    facts = Facts(cached_state=state(S.COMPLETED))
    after = retrieve_cached_state(
        step(S.PENDING, S.RUNNING, facts=facts, cache_key="k", refresh_cache=True)
    )
    assert after.status is SetStateStatus.ACCEPT


def test_no_cached_state_means_no_retrieval() -> None:
    after = retrieve_cached_state(step(S.PENDING, S.RUNNING, cache_key="k"))
    assert after.status is SetStateStatus.ACCEPT


def test_completed_with_cache_key_is_inserted_and_without_is_not() -> None:
    keyed = insert_into_cache(step(S.RUNNING, S.COMPLETED, cache_key="k"))
    plain = insert_into_cache(step(S.RUNNING, S.COMPLETED))
    assert keyed.insert_into_cache and not plain.insert_into_cache


# -- terminal states -----------------------------------------------------------------------------


@pytest.mark.parametrize("proposed", [S.CANCELLING, S.PAUSED, S.CRASHED])
def test_finished_runs_cannot_stop_again(proposed: StateType) -> None:
    after = handle_terminal_state_transitions(step(S.FAILED, proposed))
    assert after.status is SetStateStatus.ABORT


def test_completed_run_with_a_result_cannot_rerun() -> None:
    done = state(S.COMPLETED)
    done.data = {"result": 1}
    after = handle_terminal_state_transitions(step(done, S.RUNNING))
    assert after.status is SetStateStatus.REJECT and after.proposed is None


def test_completed_run_with_an_unpersisted_result_may_rerun() -> None:
    done = state(S.COMPLETED)
    done.data = {"type": "unpersisted"}
    after = handle_terminal_state_transitions(step(done, S.RUNNING))
    assert after.status is SetStateStatus.ACCEPT and after.reset_run_count


def test_leaving_a_terminal_state_resets_the_run_count_of_the_step_not_the_run() -> None:
    before = step(S.FAILED, S.SCHEDULED, run={"run_count": 3})
    after = handle_terminal_state_transitions(before)
    assert after.status is SetStateStatus.ACCEPT and after.run_count == 0
    assert before.proposal.run.run_count == 3


def test_non_terminal_initial_states_are_left_alone() -> None:
    before = step(S.RUNNING, S.CRASHED)
    assert handle_terminal_state_transitions(before) is before


# -- pending -------------------------------------------------------------------------------------


@pytest.mark.parametrize("initial", [S.PENDING, S.RUNNING, S.CANCELLING, S.CANCELLED])
def test_no_pending_after(initial: StateType) -> None:
    assert prevent_pending_transitions(step(initial, S.PENDING)).status is SetStateStatus.ABORT


@pytest.mark.parametrize("initial", [None, S.SCHEDULED, S.FAILED])
def test_pending_allowed_after(initial: StateType | None) -> None:
    assert prevent_pending_transitions(step(initial, S.PENDING)).status is SetStateStatus.ACCEPT


def test_a_renamed_pending_after_pending_is_a_sub_state_and_passes() -> None:
    due = NOW - timedelta(minutes=5)
    after = prevent_pending_transitions(
        step(state(S.PENDING, scheduled_time=due), S.PENDING, name="Submitting")
    )
    assert after.status is SetStateStatus.ACCEPT
    assert stored(after).state_details.scheduled_time == due
    plain = prevent_pending_transitions(step(S.PENDING, S.PENDING, name="Pending"))
    assert plain.status is SetStateStatus.ABORT


def test_a_deferred_run_carries_its_parameters_id_into_running() -> None:
    parameters = uuid.uuid4()
    after = copy_task_parameters_id(
        step(state(S.SCHEDULED, task_parameters_id=parameters), S.RUNNING)
    )
    assert stored(after).state_details.task_parameters_id == parameters


# -- flow runs -----------------------------------------------------------------------------------


def in_flow(flow_state: StateType, initial: StateType = S.PENDING, **run: Any) -> Step:
    facts = Facts(flow_run=FlowRunFacts(state_type=flow_state, run_count=2))
    return step(initial, S.RUNNING, run={"flow_run_id": uuid.uuid4(), **run}, facts=facts)


def test_task_cannot_start_in_a_flow_run_that_is_not_running() -> None:
    after = prevent_running_tasks_from_stopped_flows(in_flow(S.PENDING))
    assert after.status is SetStateStatus.ABORT


def test_a_task_starting_in_a_paused_flow_run_is_put_in_a_not_ready_pause() -> None:
    after = prevent_running_tasks_from_stopped_flows(in_flow(S.PAUSED))
    assert after.status is SetStateStatus.REJECT
    assert (stored(after).type, stored(after).name) == (S.PAUSED, "NotReady")


def test_rerunning_in_a_retrying_flow_run_is_named_retrying() -> None:
    after = handle_terminal_state_transitions(
        in_flow(S.RUNNING, initial=S.COMPLETED, flow_run_run_count=1)
    )
    assert stored(after).name == "Retrying"


def test_a_starting_task_records_its_flow_run_attempt() -> None:
    after = update_flow_run_tracker(in_flow(S.RUNNING))
    assert after.status is SetStateStatus.ACCEPT and after.flow_run_run_count == 2


# -- concurrency slots ---------------------------------------------------------------------------


def limited(
    tags: list[str], limits: dict[str, tuple[int, int]], initial: StateType = S.PENDING
) -> Step:
    facts = Facts(
        limits={
            tag: ConcurrencyLimit(
                id=uuid.uuid4(), created=NOW, updated=NOW, tag=tag, concurrency_limit=limit,
                active_slots=[uuid.uuid4() for _ in range(taken)],
            )
            for tag, (limit, taken) in limits.items()
        }
    )  # fmt: skip
    return step(initial, S.RUNNING, run={"tags": tags}, facts=facts)


def test_free_slots_are_claimed_for_every_limited_tag() -> None:
    after = secure_concurrency_slots(limited(["db", "api", "free"], {"db": (2, 1), "api": (1, 0)}))
    assert after.status is SetStateStatus.ACCEPT and after.take_slots == ("api", "db")


def test_a_full_limit_makes_the_run_wait_two_or_three_seconds() -> None:
    """The reference draws the wait around its limit's average slot occupancy of 2 s."""
    waits = {secure_concurrency_slots(limited(["db"], {"db": (1, 1)})).delay for _ in range(5)}
    rng = random.Random(3)
    for _ in range(200):
        drawn = dataclasses.replace(limited(["db"], {"db": (1, 1)}), rng=rng)
        waits.add(secure_concurrency_slots(drawn).delay)
    assert waits == {timedelta(seconds=2), timedelta(seconds=3)}


def test_the_slot_wait_never_exceeds_the_configured_wait() -> None:
    full = limited(["db"], {"db": (1, 1)})
    capped = dataclasses.replace(
        full, settings=OrchestrationSettings(concurrency_slot_wait_seconds=1)
    )
    assert secure_concurrency_slots(capped).delay == timedelta(seconds=1)


def test_a_zero_limit_aborts() -> None:
    after = secure_concurrency_slots(limited(["db"], {"db": (0, 0)}))
    assert after.status is SetStateStatus.ABORT


def test_a_running_run_starting_again_needs_a_slot_like_any_other() -> None:
    """As in the reference, a second RUNNING claims again; with the limit full it waits."""
    full = limited(["db"], {"db": (1, 0)}, initial=S.RUNNING)
    full.facts.limits["db"].active_slots.append(full.proposal.run.id)
    assert secure_concurrency_slots(full).status is SetStateStatus.WAIT


# -- scheduled time ------------------------------------------------------------------------------


def test_pending_copies_the_scheduled_time() -> None:
    due = NOW - timedelta(seconds=5)
    after = copy_scheduled_time(step(state(S.SCHEDULED, scheduled_time=due), S.PENDING))
    assert stored(after).state_details.scheduled_time == due


@pytest.mark.parametrize("initial", [S.SCHEDULED, S.PENDING])
def test_starting_early_waits_for_the_remaining_time(initial: StateType) -> None:
    after = wait_for_scheduled_time(
        step(state(initial, scheduled_time=NOW + timedelta(seconds=90)), S.RUNNING)
    )
    assert after.status is SetStateStatus.WAIT and after.delay == timedelta(seconds=90)


def test_leaving_scheduled_early_for_pending_does_not_wait() -> None:
    after = wait_for_scheduled_time(
        step(state(S.SCHEDULED, scheduled_time=NOW + timedelta(seconds=90)), S.PENDING)
    )
    assert after.status is SetStateStatus.ACCEPT


@pytest.mark.parametrize(("left", "waits"), [(0.4, None), (0.6, 1), (1.4, 1), (2.5, 2), (2.6, 3)])
def test_the_wait_is_rounded_to_whole_seconds(left: float, waits: int | None) -> None:
    """Whole seconds plus the fraction rounded half to even, as the reference computes it."""
    after = wait_for_scheduled_time(
        step(state(S.SCHEDULED, scheduled_time=NOW + timedelta(seconds=left)), S.RUNNING)
    )
    assert (after.delay.total_seconds() if after.delay is not None else None) == waits


def test_leaving_for_cancellation_does_not_wait() -> None:
    later = state(S.SCHEDULED, scheduled_time=NOW + timedelta(hours=1))
    assert wait_for_scheduled_time(step(later, S.CANCELLED)).status is SetStateStatus.ACCEPT


# -- retries -------------------------------------------------------------------------------------


def failing(run_count: int, policy: TaskRunPolicy, **details: Any) -> Step:
    return step(
        S.RUNNING, S.FAILED, run={"run_count": run_count, "empirical_policy": policy}, **details
    )


def test_failure_within_budget_becomes_awaiting_retry_after_the_delay() -> None:
    after = retry_failed_tasks(failing(1, TaskRunPolicy(retries=2, retry_delay=[10, 60])))
    assert after.status is SetStateStatus.REJECT
    assert (stored(after).type, stored(after).name) == (S.SCHEDULED, "AwaitingRetry")
    assert stored(after).state_details.scheduled_time == NOW + timedelta(seconds=10)


def test_the_delay_list_is_indexed_by_attempt() -> None:
    after = retry_failed_tasks(failing(2, TaskRunPolicy(retries=5, retry_delay=[10, 60])))
    assert stored(after).state_details.scheduled_time == NOW + timedelta(seconds=60)


def test_failure_past_the_budget_is_accepted() -> None:
    assert retry_failed_tasks(failing(3, TaskRunPolicy(retries=2))).status is SetStateStatus.ACCEPT


def test_a_non_retriable_failure_is_accepted() -> None:
    after = retry_failed_tasks(failing(1, TaskRunPolicy(retries=2), retriable=False))
    assert after.status is SetStateStatus.ACCEPT


def test_reruns_are_retrying_after_awaiting_retry_and_rerunning_otherwise() -> None:
    retry = rename_reruns(
        step(state(S.SCHEDULED, "AwaitingRetry"), S.RUNNING, run={"run_count": 1})
    )
    rerun = rename_reruns(step(S.SCHEDULED, S.RUNNING, run={"run_count": 1}))
    first = rename_reruns(step(S.PENDING, S.RUNNING))
    assert (stored(retry).name, stored(rerun).name, stored(first).name) == (
        "Retrying", "Rerunning", None,
    )  # fmt: skip


# -- declared transitions ------------------------------------------------------------------------


def test_a_rule_leaves_transitions_outside_its_declared_types_alone() -> None:
    before = step(S.RUNNING, S.COMPLETED, run={"run_count": 1})
    assert rename_reruns(before) is before
    assert wait_for_scheduled_time(before) is before
    assert retry_failed_tasks(before) is before
