"""The policies, named as in the reference, and `decide`: one proposal in, one `Decision` out.

- CORE: every proposal that is neither forced nor deferred.
- BACKGROUND: proposals marked `state_details.deferred`, forced or not, as in the reference:
  the PENDING guard, parameters carried along, no tag slots, no flow-run check.
- MINIMAL: forced proposals and a run's first state: no rules at all.
- Then the global bookkeeping every stored state gets (`bookkeeping.py`), the execution lease
  (`leases.py`) and the slot release, whatever the policy.

The service locks the run, asks `facts_needed`, reads those facts, calls `decide`, and persists
the decision. Nothing here does I/O.
"""

from __future__ import annotations

import dataclasses
import random
from dataclasses import dataclass

from taskrun_server.domain.states import StateType
from taskrun_server.orchestration.bookkeeping import apply_accepted_state, materialize_state
from taskrun_server.orchestration.decision import (
    Decision,
    Effects,
    Fact,
    Facts,
    OrchestrationSettings,
    Proposal,
    SetStateStatus,
)
from taskrun_server.orchestration.leases import LeaseSettings, fence, lease_after
from taskrun_server.orchestration.rules import (
    Rule,
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


@dataclass(slots=True, frozen=True)
class Policy:
    """A named, ordered list of rules."""

    name: str
    rules: tuple[Rule, ...]

    def rules_for(self, initial: StateType | None, proposed: StateType | None) -> list[Rule]:
        return [rule for rule in self.rules if rule.applies_to(initial, proposed)]


CORE_TASK_POLICY = Policy(
    "core",
    (
        prevent_duplicate_transitions,
        retrieve_cached_state,
        handle_terminal_state_transitions,
        prevent_running_tasks_from_stopped_flows,
        secure_concurrency_slots,  # after the cache: a cached run is answered when slots are full
        copy_scheduled_time,
        wait_for_scheduled_time,
        retry_failed_tasks,
        rename_reruns,
        update_flow_run_tracker,
        insert_into_cache,
    ),
)
"""The reference's core task policy, in its order, after taskrun's duplicate-transition guard."""

BACKGROUND_TASK_POLICY = Policy(
    "background",
    (
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
    ),
)
"""The reference's policy for deferred (background) runs."""

MINIMAL_TASK_POLICY = Policy("minimal", ())
"""Forced proposals and first states: only the global bookkeeping."""


DEFAULT_SETTINGS = OrchestrationSettings()
DEFAULT_LEASES = LeaseSettings()
_DEFAULT_RNG = random.Random()
"""Seeding a generator costs more than deciding a first state: one serves every caller that
brings none."""


def policy_for(proposal: Proposal) -> Policy:
    """Background for deferred proposals (even forced, as in the reference), minimal for other
    forced ones and for a run's first state, core otherwise."""
    if proposal.first:
        return MINIMAL_TASK_POLICY
    if proposal.proposed.state_details.deferred:
        return BACKGROUND_TASK_POLICY
    return MINIMAL_TASK_POLICY if proposal.force else CORE_TASK_POLICY


def _rules_for(proposal: Proposal) -> list[Rule]:
    """The proposal's policy's rules that apply to its transition, in order: chosen once, from
    the transition as proposed, as the reference compiles them."""
    initial = proposal.initial
    initial_type = initial.type if initial is not None else None
    return policy_for(proposal).rules_for(initial_type, proposal.proposed.type)


def facts_needed(proposal: Proposal) -> frozenset[Fact]:
    """The facts the applicable rules read, less those that cannot matter for this run: no flow
    run without one, no limits without tags, no cache lookup without a key to look up."""
    needed = {fact for rule in _rules_for(proposal) for fact in rule.needs}
    run, details = proposal.run, proposal.proposed.state_details
    if run.flow_run_id is None:
        needed.discard(Fact.FLOW_RUN)
    if not run.tags:
        needed.discard(Fact.TAG_LIMITS)
    if not details.cache_key or details.refresh_cache:
        needed.discard(Fact.CACHED_STATE)
    return frozenset(needed)


def decide(
    proposal: Proposal,
    facts: Facts,
    *,
    settings: OrchestrationSettings = DEFAULT_SETTINGS,
    leases: LeaseSettings = DEFAULT_LEASES,
    rng: random.Random | None = None,
) -> Decision:
    """What becomes of `proposal`: fenced by its lease, through its policy's rules in order
    until one answers other than ACCEPT, then, if a state is to be stored, the bookkeeping.
    `rng` draws retry jitter and slot waits (seeded in tests)."""
    run = proposal.run
    if not proposal.first:
        refusal = fence(run, proposal.caller_lease, proposal.proposed)
        if refusal is not None:
            return Decision(SetStateStatus.ABORT, refusal, None, None, run)
    step = Step(
        proposal=proposal,
        facts=facts,
        settings=settings,
        rng=rng or _DEFAULT_RNG,
        proposed=proposal.proposed,
    )
    for rule in _rules_for(proposal):
        step = rule.apply(step)  # already chosen for this transition: no second type check
        if step.status is not SetStateStatus.ACCEPT:
            break
    return _settle(step, leases)


def _settle(step: Step, leases: LeaseSettings) -> Decision:
    """The decision for a step the rules are done with: the stored state and the run after."""
    proposal, run = step.proposal, step.proposal.run
    caller_lease = proposal.caller_lease
    kept = caller_lease if run.lease is not None and run.lease.id == caller_lease else None
    if step.proposed is None:  # nothing stored: the run is as it was, the caller keeps its lease
        return Decision(step.status, step.reason, step.delay, None, run, caller_lease=kept)
    after = dataclasses.replace(
        run,
        run_count=step.run_count,
        flow_run_run_count=(
            run.flow_run_run_count if step.flow_run_run_count is None else step.flow_run_run_count
        ),
    )
    state = materialize_state(step.proposed, after, proposal.now)
    held = None
    if not proposal.first:
        terms = lease_after(
            run, state, caller_lease=caller_lease, now=proposal.now, settings=leases
        )
        after.lease, after.execution_deadline = terms.lease, terms.execution_deadline
        held = terms.caller_lease
    apply_accepted_state(after, proposal.initial, state)
    effects = Effects(
        take_slots=step.take_slots if state.type is StateType.RUNNING else (),
        release_slots=_releases_slots(proposal, state.type),
        insert_into_cache=step.insert_into_cache,
    )
    return Decision(step.status, step.reason, step.delay, state, after, effects, held)


def _releases_slots(proposal: Proposal, stored: StateType) -> bool:
    """Leaving RUNNING frees the run's tag slots, whatever the policy (forced included). Unlike
    the reference, entering CANCELLING frees them too (a deliberate difference)."""
    initial = proposal.initial
    return (
        initial is not None
        and initial.type is StateType.RUNNING
        and stored is not StateType.RUNNING
    )
