"""`decide`: which policy a proposal meets, which facts it needs, and the decision as a whole."""

from __future__ import annotations

import dataclasses
import uuid
from datetime import timedelta

import pytest

from taskrun_server.domain.concurrency_limits import ConcurrencyLimit
from taskrun_server.domain.states import State, StateCreate, StateDetails, StateType
from taskrun_server.orchestration.decision import Fact, Facts, Proposal, SetStateStatus
from taskrun_server.orchestration.policies import (
    BACKGROUND_TASK_POLICY,
    CORE_TASK_POLICY,
    MINIMAL_TASK_POLICY,
    decide,
    facts_needed,
    policy_for,
)
from taskrun_server.orchestration.rules import (
    prevent_pending_transitions,
    prevent_running_tasks_from_stopped_flows,
    secure_concurrency_slots,
)
from tests.orchestration.test_rules import NOW, new_run, state

S = StateType


def proposal(
    initial: StateType | State | None, proposed: StateType, *, force: bool = False, **run: object
) -> Proposal:
    initial_state = state(initial) if isinstance(initial, StateType) else initial
    return Proposal(
        run=new_run(initial_state, **run),
        proposed=StateCreate(type=proposed),
        now=NOW,
        force=force,
    )


def deferred(p: Proposal) -> Proposal:
    return dataclasses.replace(
        p, proposed=dataclasses.replace(p.proposed, state_details=StateDetails(deferred=True))
    )


def full_limit(tag: str) -> ConcurrencyLimit:
    return ConcurrencyLimit(
        id=uuid.uuid4(), created=NOW, updated=NOW, tag=tag, concurrency_limit=1,
        active_slots=[uuid.uuid4()],
    )  # fmt: skip


# -- policies ------------------------------------------------------------------------------------


def test_deferred_proposals_meet_the_background_policy_even_when_forced() -> None:
    assert policy_for(deferred(proposal(S.SCHEDULED, S.PENDING, force=True))) is (
        BACKGROUND_TASK_POLICY
    )


def test_forced_proposals_and_first_states_meet_no_rules() -> None:
    assert policy_for(proposal(S.RUNNING, S.PENDING, force=True)) is MINIMAL_TASK_POLICY
    first = dataclasses.replace(proposal(None, S.COMPLETED), first=True)
    assert policy_for(first) is MINIMAL_TASK_POLICY


def test_the_pending_guard_and_the_checks_it_skips_belong_to_their_policies() -> None:
    assert prevent_pending_transitions not in CORE_TASK_POLICY.rules
    assert prevent_pending_transitions in BACKGROUND_TASK_POLICY.rules
    assert secure_concurrency_slots not in BACKGROUND_TASK_POLICY.rules
    assert prevent_running_tasks_from_stopped_flows not in BACKGROUND_TASK_POLICY.rules


# -- facts ---------------------------------------------------------------------------------------


def test_a_proposal_that_no_rule_reads_anything_for_needs_no_facts() -> None:
    assert facts_needed(proposal(S.RUNNING, S.COMPLETED, tags=["db"])) == frozenset()


def test_starting_a_tagged_run_in_a_flow_run_needs_its_limits_and_flow_run() -> None:
    needed = facts_needed(proposal(S.PENDING, S.RUNNING, tags=["db"], flow_run_id=uuid.uuid4()))
    assert needed == {Fact.TAG_LIMITS, Fact.FLOW_RUN}


def test_a_deferred_start_needs_no_limits() -> None:
    assert facts_needed(deferred(proposal(S.PENDING, S.RUNNING, tags=["db"]))) == frozenset()


# -- decisions -----------------------------------------------------------------------------------


def test_an_accepted_start_stores_a_state_and_counts_the_attempt_leaving_the_input_alone() -> None:
    start = proposal(S.PENDING, S.RUNNING)
    decision = decide(start, Facts())
    assert decision.status is SetStateStatus.ACCEPT and decision.state is not None
    assert decision.run.run_count == 1 and decision.run.state is decision.state
    assert start.run.run_count == 0 and start.run.state_type is S.PENDING


def test_a_reset_run_count_does_not_leak_into_a_waiting_answer() -> None:
    """Leaving FAILED resets the count, then the full tag answers WAIT: nothing is stored, so
    the run (and the answer) keeps its count of 3."""
    again = proposal(S.FAILED, S.RUNNING, run_count=3, tags=["db"])
    decision = decide(again, Facts(limits={"db": full_limit("db")}))
    assert decision.status is SetStateStatus.WAIT and decision.state is None
    assert decision.run.run_count == 3 and decision.effects.take_slots == ()


def test_a_cached_run_is_answered_even_when_its_slots_are_full() -> None:
    cached = state(S.COMPLETED, cache_key="k")
    start = dataclasses.replace(
        proposal(S.PENDING, S.RUNNING, tags=["db"]),
        proposed=StateCreate(type=S.RUNNING, state_details=StateDetails(cache_key="k")),
    )
    decision = decide(start, Facts(cached_state=cached, limits={"db": full_limit("db")}))
    assert decision.status is SetStateStatus.REJECT and decision.state is not None
    assert (decision.state.type, decision.state.name) == (S.COMPLETED, "Cached")


@pytest.mark.parametrize("force", [False, True])
@pytest.mark.parametrize("leaving_for", [S.COMPLETED, S.CANCELLING])
def test_leaving_running_releases_slots_forced_or_not(force: bool, leaving_for: StateType) -> None:
    decision = decide(proposal(S.RUNNING, leaving_for, force=force, run_count=1), Facts())
    assert decision.state is not None and decision.effects.release_slots


def test_a_first_state_in_a_terminal_type_starts_and_ends_the_run() -> None:
    first = dataclasses.replace(proposal(None, S.COMPLETED), first=True)
    decision = decide(first, Facts())
    assert decision.run.start_time == decision.run.end_time == NOW


def test_a_waiting_start_says_how_long() -> None:
    later = state(S.SCHEDULED, scheduled_time=NOW + timedelta(minutes=5))
    decision = decide(proposal(later, S.RUNNING), Facts())
    assert decision.status is SetStateStatus.WAIT and decision.delay == timedelta(minutes=5)
