"""Drive one scenario through one server and record what each step shows."""

from __future__ import annotations

from typing import Protocol

from conformance.observation import Observation
from conformance.scenario import (
    Create,
    Propose,
    Query,
    RunSpec,
    Scenario,
    SetFlowRun,
    StateSpec,
    Step,
)


class Driver(Protocol):
    prefix: str

    def error_code(self, error: Exception) -> str: ...
    def start_flow_run(self, state_type: str) -> None: ...
    def set_flow_run(self, state_type: str) -> None: ...
    def create_limit(self, tag: str, limit: int) -> None: ...
    def slots(self, tag: str) -> int: ...
    def create(self, spec: RunSpec) -> Observation: ...
    def propose(self, alias: str, spec: StateSpec, force: bool) -> Observation: ...
    def delete(self, alias: str) -> Observation: ...
    def query(self, query: Query) -> Observation: ...


def run_scenario(scenario: Scenario, driver: Driver) -> list[Observation]:
    """One observation per step; a refused call is observed as its status code."""
    if scenario.flow_run_state is not None:
        driver.start_flow_run(scenario.flow_run_state)
    for tag, limit in scenario.limits.items():
        driver.create_limit(tag, limit)
    seen: list[Observation] = []
    for step in scenario.steps:
        try:
            observed = _apply(step, driver)
        except Exception as error:  # the status code is what is compared
            observed = {"error": driver.error_code(error)}
        if scenario.limits:
            observed["slots"] = {tag: driver.slots(tag) for tag in scenario.limits}
        seen.append(observed)
    return seen


def _apply(step: Step, driver: Driver) -> Observation:
    if isinstance(step, Create):
        return driver.create(step.run)
    if isinstance(step, Propose):
        return driver.propose(step.alias, step.state, step.force)
    if isinstance(step, SetFlowRun):
        driver.set_flow_run(step.type)
        return {}
    if isinstance(step, Query):
        found = driver.query(step)
        if step.sort == "ID_DESC":  # Prefect's ids are random, taskrun's time-ordered
            found["runs"] = sorted(found["runs"])
        return found
    return driver.delete(step.alias)
