"""What orchestration rules read and decide: one proposed transition of one task run.

The service loads every fact a rule may need (the flow run, a cached state, the concurrency
limits of the run's tags) before the rules run, so rules stay pure functions of this context.
"""

from __future__ import annotations

import enum
import random
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from taskrun_server.domain.concurrency_limits import ConcurrencyLimit
from taskrun_server.domain.states import State, StateCreate, StateType
from taskrun_server.domain.task_runs import TaskRun


class SetStateStatus(enum.Enum):
    """Orchestration's answer to a proposal."""

    ACCEPT = "accept"
    REJECT = "reject"
    WAIT = "wait"
    ABORT = "abort"


@dataclass(slots=True, frozen=True)
class FlowRunFacts:
    """What task-run rules need to know about the enclosing flow run."""

    state_type: StateType
    run_count: int


@dataclass(slots=True, frozen=True)
class OrchestrationSettings:
    """Delays orchestration asks clients to wait, in seconds."""

    concurrency_slot_wait_seconds: float = 30.0


@dataclass(slots=True, kw_only=True)
class TransitionContext:
    """A proposal under consideration and the decision taken so far.

    `run` is a working copy: rules may change its fields, and the changes are stored only if a
    state is stored. `proposed` may be replaced (REJECT with a state) or cleared (REJECT with
    nothing, WAIT, ABORT).
    """

    run: TaskRun
    initial: State | None
    proposed: StateCreate | None
    now: datetime
    flow_run: FlowRunFacts | None = None
    cached_state: State | None = None
    limits: dict[str, ConcurrencyLimit] = field(default_factory=dict)
    settings: OrchestrationSettings = field(default_factory=OrchestrationSettings)
    rng: random.Random = field(default_factory=random.Random)

    status: SetStateStatus = SetStateStatus.ACCEPT
    reason: str | None = None
    delay: timedelta | None = None
    slots_to_take: list[str] = field(default_factory=list)
    insert_into_cache: bool = False

    @property
    def decided(self) -> bool:
        """Whether a rule has already answered something other than ACCEPT."""
        return self.status is not SetStateStatus.ACCEPT

    @property
    def initial_type(self) -> StateType | None:
        return self.initial.type if self.initial is not None else None

    @property
    def proposed_type(self) -> StateType | None:
        return self.proposed.type if self.proposed is not None else None

    def reject(self, replacement: StateCreate | None, reason: str) -> None:
        """Refuse the proposal; store `replacement` instead, or nothing."""
        self.status = SetStateStatus.REJECT
        self.proposed = replacement
        self.reason = reason

    def wait(self, delay: timedelta, reason: str) -> None:
        """Store nothing now; the client should propose again after `delay`."""
        self.status = SetStateStatus.WAIT
        self.proposed = None
        self.delay = max(delay, timedelta(0))
        self.reason = reason

    def abort(self, reason: str) -> None:
        """Store nothing; proposing again will not help."""
        self.status = SetStateStatus.ABORT
        self.proposed = None
        self.reason = reason
