"""The task-run orchestration rules, each a small pure function declared with the transitions
it applies to and the facts it reads.

A rule takes the `Step` so far (the proposal as the earlier rules left it) and returns the next
one: unchanged, renamed, with details filled in, or answered REJECT, WAIT or ABORT. A rule never
edits what it is given. Policies (`policies.py`) say which rules run, in which order.
"""

from __future__ import annotations

import dataclasses
import math
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from taskrun_server.domain.states import State, StateCreate, StateDetails, StateType
from taskrun_server.orchestration.decision import (
    Fact,
    Facts,
    OrchestrationSettings,
    Proposal,
    SetStateStatus,
)
from taskrun_server.orchestration.retries import clamped_interval, retry_delay_seconds

S = StateType
ALL_TYPES: frozenset[StateType | None] = frozenset({*StateType, None})
TERMINAL: frozenset[StateType | None] = frozenset(t for t in StateType if t.is_terminal)


@dataclass(slots=True, frozen=True)
class Step:
    """A proposal on its way through a policy: the inputs, and what the rules made of it.

    `proposed` is None once a rule answered with nothing to store. `reset_run_count` and
    `flow_run_run_count` are changes to the run that take effect only if a state is stored."""

    proposal: Proposal
    facts: Facts
    settings: OrchestrationSettings
    rng: random.Random
    proposed: StateCreate | None
    status: SetStateStatus = SetStateStatus.ACCEPT
    reason: str | None = None
    delay: timedelta | None = None
    reset_run_count: bool = False
    flow_run_run_count: int | None = None
    take_slots: tuple[str, ...] = ()
    insert_into_cache: bool = False

    @property
    def initial(self) -> State | None:
        return self.proposal.initial

    @property
    def run_count(self) -> int:
        """The run's count as the rules see it: zero once a rule reset it."""
        return 0 if self.reset_run_count else self.proposal.run.run_count

    def reject(self, replacement: StateCreate | None, reason: str) -> Step:
        """Refuse the proposal; store `replacement` instead, or nothing."""
        return self._answer(SetStateStatus.REJECT, replacement, reason)

    def wait(self, delay: timedelta, reason: str) -> Step:
        """Store nothing now; the client should propose again after `delay`."""
        answered = self._answer(SetStateStatus.WAIT, None, reason)
        return dataclasses.replace(answered, delay=max(delay, timedelta(0)))

    def abort(self, reason: str) -> Step:
        """Store nothing; proposing again will not help."""
        return self._answer(SetStateStatus.ABORT, None, reason)

    def _answer(self, status: SetStateStatus, state: StateCreate | None, reason: str) -> Step:
        return dataclasses.replace(self, status=status, proposed=state, reason=reason)

    def renamed(self, name: str) -> Step:
        assert self.proposed is not None
        return dataclasses.replace(self, proposed=dataclasses.replace(self.proposed, name=name))

    def with_details(self, **changes: Any) -> Step:
        assert self.proposed is not None
        details = dataclasses.replace(self.proposed.state_details, **changes)
        proposed = dataclasses.replace(self.proposed, state_details=details)
        return dataclasses.replace(self, proposed=proposed)


@dataclass(slots=True, frozen=True)
class Rule:
    """One rule: the transitions it applies to (None: no state), the facts it reads, and what
    it does. Calling a rule on a transition outside its types returns the step unchanged."""

    name: str
    from_types: frozenset[StateType | None]
    to_types: frozenset[StateType | None]
    apply: Callable[[Step], Step]
    needs: frozenset[Fact] = field(default_factory=frozenset)

    def applies_to(self, initial: StateType | None, proposed: StateType | None) -> bool:
        return initial in self.from_types and proposed in self.to_types

    def __call__(self, step: Step) -> Step:
        initial = step.initial.type if step.initial is not None else None
        proposed = step.proposed.type if step.proposed is not None else None
        if step.proposed is None or not self.applies_to(initial, proposed):
            return step
        return self.apply(step)


def rule(
    from_types: frozenset[StateType | None] | set[StateType | None],
    to_types: frozenset[StateType | None] | set[StateType | None],
    needs: frozenset[Fact] = frozenset(),
) -> Callable[[Callable[[Step], Step]], Rule]:
    """Declare a function as a rule for the transitions `from_types` -> `to_types`."""

    def declare(apply: Callable[[Step], Step]) -> Rule:
        return Rule(apply.__name__, frozenset(from_types), frozenset(to_types), apply, needs)

    return declare


# -- the rules, in the order the core policy applies them ----------------------------------------


@rule(ALL_TYPES - {None}, ALL_TYPES)
def prevent_duplicate_transitions(step: Step) -> Step:
    """A proposal carrying the transition id of the current state was already applied: a client
    retrying after a lost response gets the current state back instead of a second copy."""
    assert step.proposed is not None and step.initial is not None
    transition_id = step.proposed.state_details.transition_id
    if transition_id is not None and transition_id == step.initial.state_details.transition_id:
        return step.reject(None, "This run has already made this state transition.")
    return step


@rule(ALL_TYPES, {S.RUNNING}, frozenset({Fact.CACHED_STATE}))
def retrieve_cached_state(step: Step) -> Step:
    """A RUNNING proposal whose cache key matches an unexpired COMPLETED state is answered with a
    copy of that state, named "Cached": the work was already done."""
    assert step.proposed is not None
    details = step.proposed.state_details
    cached = step.facts.cached_state
    if not details.cache_key or details.refresh_cache or cached is None:
        return step
    copy = StateCreate(
        type=cached.type,
        name="Cached",
        message=cached.message,
        state_details=dataclasses.replace(cached.state_details, transition_id=None),
        data=cached.data,
    )
    return step.reject(copy, "Retrieved state from cache")


def _is_persisted_result(data: Any) -> bool:
    """A completed run keeps its result when its data is anything but an unpersisted marker."""
    if data is None:
        return False
    return not (isinstance(data, dict) and data.get("type") == "unpersisted")


STOPPING_TYPES = frozenset({S.CANCELLING, S.PAUSED, S.CRASHED})


@rule(TERMINAL, ALL_TYPES, frozenset({Fact.FLOW_RUN}))
def handle_terminal_state_transitions(step: Step) -> Step:
    """A finished run may not crash, pause or start cancelling, and a completed run whose result
    is kept may not run again. Leaving a terminal state otherwise starts the attempts anew, and
    starting again in a retried flow run is named "Retrying"."""
    assert step.proposed is not None and step.initial is not None
    if step.proposed.type in STOPPING_TYPES:
        return step.abort(f"Run is already {step.initial.type.value}.")
    if step.initial.type is S.COMPLETED and _is_persisted_result(step.initial.data):
        return step.reject(None, "This run is already completed.")
    proposed = step.proposed.type
    if not proposed.is_terminal:
        step = dataclasses.replace(step, reset_run_count=True)
    flow_run = step.facts.flow_run
    run = step.proposal.run
    flow_retrying = flow_run is not None and run.flow_run_run_count < flow_run.run_count
    if proposed is S.RUNNING and run.flow_run_id is not None and flow_retrying:
        return step.renamed("Retrying")
    return step


NO_PENDING_AFTER: frozenset[StateType | None] = frozenset(
    {S.PENDING, S.RUNNING, S.CANCELLING, S.CANCELLED}
)


@rule(NO_PENDING_AFTER, {S.PENDING})
def prevent_pending_transitions(step: Step) -> Step:
    """PENDING means "about to run": a run that is pending, running or cancelled cannot go back
    (so two workers cannot both submit it). A renamed PENDING after PENDING ("Submitting") is a
    named sub-state and passes, keeping the scheduled time. Background policy only."""
    assert step.proposed is not None and step.initial is not None
    name = step.proposed.name or S.PENDING.default_name
    if step.initial.type is S.PENDING and name not in (step.initial.name, "Pending"):
        return step.with_details(scheduled_time=step.initial.state_details.scheduled_time)
    return step.abort(
        f"This run is in a {step.initial.type.value} state and cannot transition to a "
        "PENDING state."
    )


@rule(ALL_TYPES, {S.RUNNING}, frozenset({Fact.FLOW_RUN}))
def prevent_running_tasks_from_stopped_flows(step: Step) -> Step:
    """A task in a flow run starts only while the flow run is RUNNING. While it is PAUSED, the
    task is moved to a PAUSED state named "NotReady"; otherwise the proposal is aborted."""
    flow_run = step.facts.flow_run
    run = step.proposal.run
    if run.flow_run_id is None or flow_run is None:
        return step
    if flow_run.state_type is S.PAUSED:
        return step.reject(
            StateCreate(type=S.PAUSED, name="NotReady"),
            "The flow is paused, new tasks can execute after resuming flow run: "
            f"{run.flow_run_id}.",
        )
    if flow_run.state_type is not S.RUNNING:
        return step.abort("The enclosing flow must be running to begin task execution.")
    return step


AVERAGE_SLOT_OCCUPANCY_SECONDS = 2.0
"""The reference spreads retries for a full tag around its limit's average slot occupancy,
which for tag limits stays at its initial two seconds: releases do not report occupancy."""


def slot_wait_seconds(settings: OrchestrationSettings, rng: random.Random) -> float:
    """How long a run waits for a full tag: around the average occupancy, drawn so that waiting
    runs do not all come back together, never above the configured wait. Whole seconds, as the
    reference answers, unless the configured wait is under a second (rounding would make it 0)."""
    average = min(AVERAGE_SLOT_OCCUPANCY_SECONDS, settings.concurrency_slot_wait_seconds)
    drawn = clamped_interval(average, 0.3, rng)
    return float(round(drawn)) if average >= 1 else drawn


@rule(ALL_TYPES, {S.RUNNING}, frozenset({Fact.TAG_LIMITS}))
def secure_concurrency_slots(step: Step) -> Step:
    """A RUNNING proposal needs a free slot under every limit on the run's tags, even when the
    run is already RUNNING (the reference counts a second start as a second claim). Slots are
    taken only if the RUNNING state is stored."""
    limits = step.facts.limits
    wanted: list[str] = []
    for tag in sorted(set(step.proposal.run.tags)):
        limit = limits.get(tag)
        if limit is None:
            continue
        if limit.concurrency_limit == 0:
            return step.abort(
                f'The concurrency limit on tag "{tag}" is 0 and will deadlock if the task '
                "tries to run again."
            )
        if len(limit.active_slots) >= limit.concurrency_limit:
            return step.wait(
                timedelta(seconds=slot_wait_seconds(step.settings, step.rng)),
                f"Concurrency limit reached for tags: {tag}",
            )
        wanted.append(tag)
    return dataclasses.replace(step, take_slots=tuple(wanted))


@rule({S.SCHEDULED}, {S.PENDING})
def copy_scheduled_time(step: Step) -> Step:
    """PENDING inherits the scheduled time of the SCHEDULED state it leaves."""
    assert step.proposed is not None and step.initial is not None
    if step.proposed.state_details.scheduled_time is not None:
        return step
    return step.with_details(scheduled_time=step.initial.state_details.scheduled_time)


@rule({S.SCHEDULED, S.PENDING}, {S.PENDING, S.RUNNING})
def copy_task_parameters_id(step: Step) -> Step:
    """A deferred run keeps the reference to its parameters from SCHEDULED through PENDING to
    RUNNING, unless the proposal names its own. Background policy only."""
    assert step.proposed is not None and step.initial is not None
    if step.proposed.state_details.task_parameters_id is not None:
        return step
    return step.with_details(task_parameters_id=step.initial.state_details.task_parameters_id)


@rule({S.SCHEDULED, S.PENDING}, {S.RUNNING})
def wait_for_scheduled_time(step: Step) -> Step:
    """Starting before the scheduled time is answered WAIT with the whole seconds that remain,
    rounded as the reference does: under half a second left is no wait at all. Leaving
    SCHEDULED early for PENDING is fine."""
    assert step.initial is not None
    scheduled = step.initial.state_details.scheduled_time
    if scheduled is None:
        return step
    remaining = scheduled - step.proposal.now
    seconds = math.floor(remaining.total_seconds()) + round(remaining.microseconds / 1e6)
    if seconds > 0:
        return step.wait(timedelta(seconds=seconds), "Scheduled time is in the future")
    return step


@rule({S.RUNNING}, {S.FAILED})
def retry_failed_tasks(step: Step) -> Step:
    """A run that fails while it has retries left is rescheduled as AwaitingRetry instead."""
    assert step.proposed is not None
    if step.proposed.state_details.retriable is False:
        return step
    run = step.proposal.run
    retries = run.empirical_policy.retries
    if retries is None or step.run_count > retries:
        return step
    delay = retry_delay_seconds(run.empirical_policy, step.run_count, step.rng)
    retry = StateCreate(
        type=S.SCHEDULED,
        name="AwaitingRetry",
        message=step.proposed.message,
        data=step.proposed.data,
        state_details=StateDetails(scheduled_time=step.proposal.now + timedelta(seconds=delay)),
    )
    return step.reject(retry, "Retrying")


@rule(ALL_TYPES - {None}, {S.RUNNING})
def rename_reruns(step: Step) -> Step:
    """A run that has run before and starts again is "Retrying" after an AwaitingRetry state,
    and "Rerunning" after anything else."""
    assert step.initial is not None
    if step.run_count > 0:
        return step.renamed("Retrying" if step.initial.name == "AwaitingRetry" else "Rerunning")
    return step


@rule(ALL_TYPES, {S.RUNNING}, frozenset({Fact.FLOW_RUN}))
def update_flow_run_tracker(step: Step) -> Step:
    """A starting task records which attempt of its flow run it belongs to."""
    flow_run = step.facts.flow_run
    if flow_run is None:
        return step
    return dataclasses.replace(step, flow_run_run_count=flow_run.run_count)


@rule(ALL_TYPES, {S.COMPLETED})
def insert_into_cache(step: Step) -> Step:
    """A COMPLETED state with a cache key is remembered for later cache retrieval."""
    assert step.proposed is not None
    return dataclasses.replace(step, insert_into_cache=bool(step.proposed.state_details.cache_key))
