"""The scenario language both drivers speak: a run created in some state, inside an optional
flow run, under optional tag limits, then a sequence of steps. Nothing here knows either API."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

Details = dict[str, Any]


@dataclass(frozen=True)
class StateSpec:
    """A state to create a run in or to propose. `scheduled_in` is seconds from now."""

    type: str
    name: str | None = None
    details: Details = field(default_factory=dict)
    scheduled_in: float | None = None
    data: Any = None


@dataclass(frozen=True)
class RunSpec:
    """A task run to create. `alias` names it for later steps; tags and cache keys are made
    unique per scenario by the drivers, so scenarios never see each other's slots or cache."""

    alias: str = "run"
    state: StateSpec | None = None
    tags: tuple[str, ...] = ()
    retries: int | None = None
    retry_delay: tuple[float, ...] = ()
    in_flow_run: bool = True


@dataclass(frozen=True)
class Create:
    run: RunSpec


@dataclass(frozen=True)
class Propose:
    """Propose a state for the run named `alias`."""

    state: StateSpec
    alias: str = "run"
    force: bool = False


@dataclass(frozen=True)
class SetFlowRun:
    """Move the enclosing flow run to another state (forced, as an operator would)."""

    type: str


@dataclass(frozen=True)
class Delete:
    alias: str = "run"


@dataclass(frozen=True)
class Query:
    """Read the scenario's runs (those tagged "all") through ReadTaskRuns and CountTaskRuns,
    narrowed by state types, whether a start time is set, and a name pattern."""

    states: tuple[str, ...] = ()
    start_time_null: bool | None = None
    name_like: str | None = None
    sort: str = "ID_DESC"
    limit: int | None = None
    offset: int = 0


Step = Create | Propose | SetFlowRun | Delete | Query


@dataclass(frozen=True)
class Scenario:
    """One behaviour to compare. `family` groups scenarios in the report."""

    family: str
    name: str
    steps: tuple[Step, ...]
    flow_run_state: str | None = None
    limits: dict[str, int] = field(default_factory=dict)

    @property
    def key(self) -> str:
        return f"{self.family}/{self.name}"
