"""What orchestration decides from, and what it decides: plain frozen values.

`policies.decide` is a pure function from a `Proposal` (the run, its current state, the
proposed state, the time) and the `Facts` the service read for it, to a `Decision`: the answer,
the state to store (or none), the run as it will be afterwards (the original when nothing is
stored), and the `Effects` the service must persist beside them. Nothing here touches gRPC or
SQL, and nothing is edited after the fact: a rule that answers WAIT after another reset the run
count cannot leak that reset, because the reset lives in the decision only if a state is stored.
"""

from __future__ import annotations

import enum
import uuid
from collections.abc import Mapping
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


class Fact(enum.Enum):
    """Something a rule reads beyond the run itself; the service loads only what is declared."""

    FLOW_RUN = "flow_run"
    CACHED_STATE = "cached_state"
    TAG_LIMITS = "tag_limits"


@dataclass(slots=True, frozen=True)
class FlowRunFacts:
    """What task-run rules need to know about the enclosing flow run."""

    state_type: StateType
    run_count: int


@dataclass(slots=True, frozen=True)
class Facts:
    """What the service read for one proposal (see `Fact`)."""

    flow_run: FlowRunFacts | None = None
    cached_state: State | None = None
    limits: Mapping[str, ConcurrencyLimit] = field(default_factory=dict)


@dataclass(slots=True, frozen=True)
class OrchestrationSettings:
    """Server settings the rules read."""

    concurrency_slot_wait_seconds: float = 30.0
    """The longest a run is told to wait for a tag slot (the reference's cap)."""


@dataclass(slots=True, frozen=True)
class Proposal:
    """One proposed state for one locked run. `first`: the run's first state (CreateTaskRun),
    which is neither fenced nor leased. `caller_lease`: the execution lease the caller names."""

    run: TaskRun
    proposed: StateCreate
    now: datetime
    force: bool = False
    caller_lease: uuid.UUID | None = None
    first: bool = False

    @property
    def initial(self) -> State | None:
        return self.run.state


@dataclass(slots=True, frozen=True)
class Effects:
    """What must be persisted beside a stored state."""

    take_slots: tuple[str, ...] = ()
    release_slots: bool = False
    insert_into_cache: bool = False


@dataclass(slots=True, frozen=True)
class Decision:
    """The answer to a proposal, and everything the service stores for it.

    `state` is the state to store, None when nothing is stored; then `run` is the run as it was
    and `effects` is empty. `caller_lease` is the lease the caller holds afterwards."""

    status: SetStateStatus
    reason: str | None
    delay: timedelta | None
    state: State | None
    run: TaskRun
    effects: Effects = Effects()
    caller_lease: uuid.UUID | None = None

    @property
    def current_state(self) -> State | None:
        """The state the run is in once the decision is persisted."""
        return self.state if self.state is not None else self.run.state
