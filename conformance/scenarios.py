"""The scenarios, by family. Each family is one kind of behaviour Prefect's own orchestration
tests pin down (terminal transitions, retries, caching, tag slots, background runs, flow-run
checks), plus the whole matrix of state types: written here from the reference's documented
behaviour and test cases, not copied from them."""

from __future__ import annotations

from conformance.scenario import (
    Create,
    Delete,
    Propose,
    Query,
    RunSpec,
    Scenario,
    SetFlowRun,
    StateSpec,
    Step,
)
from taskrun.v1 import state_pb2

TYPES = tuple(
    value.name.removeprefix("STATE_TYPE_")
    for value in state_pb2.StateType.DESCRIPTOR.values
    if value.number != state_pb2.STATE_TYPE_UNSPECIFIED
)
"""Every state type, by the name both APIs use, in the contract's order."""
TPID = "0b5e1d2c-0000-4000-8000-000000000001"
PERSISTED = {"storage_key": "/results/abc", "serializer": {"type": "json"}}


def _run(state: str | None = None, **kwargs: object) -> Create:
    spec = StateSpec(state) if state else None
    return Create(RunSpec(state=spec, **kwargs))  # type: ignore[arg-type]


def _to(type_: str, name: str | None = None, **details: object) -> Propose:
    return Propose(StateSpec(type_, name, dict(details)))


def matrix() -> list[Scenario]:
    """Every state type to every state type, in and out of a RUNNING flow run, forced or not."""
    found = []
    for flow in (None, "RUNNING"):
        for force in (False, True):
            for initial in TYPES:
                for proposed in TYPES:
                    steps: tuple[Step, ...] = (
                        _run(initial),
                        Propose(StateSpec(proposed), force=force),
                    )
                    where = "flow" if flow else "alone"
                    how = "forced" if force else "orchestrated"
                    found.append(
                        Scenario(
                            f"matrix-{where}-{how}",
                            f"{initial}->{proposed}",
                            steps,
                            flow_run_state=flow,
                        )
                    )
    return found


def creates() -> list[Scenario]:
    """A run created directly in each state, then read back."""
    found = [Scenario("create", f"in-{t}", (_run(t),)) for t in TYPES]
    found.append(Scenario("create", "no-state", (_run(),)))
    found.append(
        Scenario(
            "create",
            "scheduled-later",
            (Create(RunSpec(state=StateSpec("SCHEDULED", scheduled_in=3600))),),
        )
    )
    return found


def lifecycle() -> list[Scenario]:
    """A run's usual path and its re-runs."""
    return [
        Scenario(
            "lifecycle",
            "pending-running-completed",
            (_run("PENDING"), _to("RUNNING"), _to("COMPLETED")),
        ),
        Scenario(
            "lifecycle",
            "scheduled-pending-running-failed",
            (_run("SCHEDULED"), _to("PENDING"), _to("RUNNING"), _to("FAILED")),
        ),
        Scenario(
            "lifecycle",
            "rerun-after-failed",
            (_run("PENDING"), _to("RUNNING"), _to("FAILED"), _to("RUNNING")),
        ),
        Scenario(
            "lifecycle",
            "rerun-after-completed-unpersisted",
            (_run("PENDING"), _to("RUNNING"), _to("COMPLETED"), _to("RUNNING")),
        ),
        Scenario(
            "lifecycle",
            "rerun-after-completed-persisted",
            (
                _run("PENDING"),
                _to("RUNNING"),
                Propose(StateSpec("COMPLETED", data=PERSISTED)),
                _to("RUNNING"),
            ),
        ),
        Scenario(
            "lifecycle",
            "rerun-after-cancelled",
            (_run("PENDING"), _to("RUNNING"), _to("CANCELLED"), _to("PENDING"), _to("RUNNING")),
        ),
        Scenario(
            "lifecycle", "running-to-running", (_run("PENDING"), _to("RUNNING"), _to("RUNNING"))
        ),
        Scenario("lifecycle", "pending-to-pending", (_run("PENDING"), _to("PENDING"))),
        Scenario("lifecycle", "pending-renamed", (_run("PENDING"), _to("PENDING", "Submitting"))),
        Scenario(
            "lifecycle",
            "cancelling-then-completed",
            (_run("PENDING"), _to("RUNNING"), _to("CANCELLING"), _to("COMPLETED")),
        ),
        Scenario(
            "lifecycle",
            "cancelling-then-cancelled",
            (_run("PENDING"), _to("RUNNING"), _to("CANCELLING"), _to("CANCELLED")),
        ),
        Scenario(
            "lifecycle",
            "false-retriable-kept",
            (_run("PENDING"), _to("RUNNING"), _to("FAILED", retriable=False)),
        ),
        Scenario(
            "lifecycle",
            "false-refresh-cache-kept",
            (_run("PENDING"), _to("RUNNING", refresh_cache=False)),
        ),
    ]


def scheduling() -> list[Scenario]:
    """Scheduled times: leaving SCHEDULED early, waiting to start."""
    later = StateSpec("SCHEDULED", scheduled_in=3600)
    return [
        Scenario("schedule", "early-pending", (Create(RunSpec(state=later)), _to("PENDING"))),
        Scenario("schedule", "early-running", (Create(RunSpec(state=later)), _to("RUNNING"))),
        Scenario(
            "schedule",
            "early-pending-then-running",
            (Create(RunSpec(state=later)), _to("PENDING"), _to("RUNNING")),
        ),
        Scenario(
            "schedule",
            "early-running-forced",
            (Create(RunSpec(state=later)), Propose(StateSpec("RUNNING"), force=True)),
        ),
        Scenario("schedule", "early-completed", (Create(RunSpec(state=later)), _to("COMPLETED"))),
        Scenario(
            "schedule",
            "soon-running",
            (Create(RunSpec(state=StateSpec("SCHEDULED", scheduled_in=0.2))), _to("RUNNING")),
        ),
        Scenario(
            "schedule",
            "pending-keeps-own-time",
            (_run("SCHEDULED"), Propose(StateSpec("PENDING", scheduled_in=600)), _to("RUNNING")),
        ),
    ]


def retries() -> list[Scenario]:
    def failing(retries: int, delay: tuple[float, ...] = (), *more: Step) -> tuple[Step, ...]:
        return (
            Create(RunSpec(state=StateSpec("PENDING"), retries=retries, retry_delay=delay)),
            _to("RUNNING"),
            _to("FAILED"),
            *more,
        )

    return [
        Scenario("retries", "no-retries", failing(0)),
        Scenario("retries", "one-retry", failing(1)),
        Scenario("retries", "retry-then-run", failing(1, (), _to("RUNNING"))),
        Scenario("retries", "retries-exhausted", failing(1, (), _to("RUNNING"), _to("FAILED"))),
        Scenario("retries", "delay-list", failing(2, (10.0, 20.0), _to("RUNNING"))),
        Scenario(
            "retries",
            "not-retriable",
            (
                Create(RunSpec(state=StateSpec("PENDING"), retries=2)),
                _to("RUNNING"),
                _to("FAILED", retriable=False),
            ),
        ),
        Scenario(
            "retries",
            "forced-failed",
            (
                Create(RunSpec(state=StateSpec("PENDING"), retries=2)),
                _to("RUNNING"),
                Propose(StateSpec("FAILED"), force=True),
            ),
        ),
        Scenario(
            "retries",
            "crashed-is-not-retried",
            (
                Create(RunSpec(state=StateSpec("PENDING"), retries=2)),
                _to("RUNNING"),
                _to("CRASHED"),
            ),
        ),
        Scenario("retries", "pending-after-awaiting-retry", failing(1, (), _to("PENDING"))),
    ]


def caching() -> list[Scenario]:
    key = {"cache_key": "k"}

    def completed(**details: object) -> Propose:
        return Propose(StateSpec("COMPLETED", details={**key, **details}))

    def second(**details: object) -> tuple[Step, ...]:
        return (
            Create(RunSpec("second", StateSpec("PENDING"))),
            Propose(StateSpec("RUNNING", details={**key, **details}), "second"),
        )

    first = (_run("PENDING"), _to("RUNNING"))
    return [
        Scenario("cache", "hit", (*first, completed(), *second())),
        Scenario(
            "cache", "hit-expiring-later", (*first, completed(cache_expiration=3600), *second())
        ),
        Scenario("cache", "expired", (*first, completed(cache_expiration=-3600), *second())),
        Scenario("cache", "refresh", (*first, completed(), *second(refresh_cache=True))),
        Scenario("cache", "miss", (*second(),)),
        Scenario(
            "cache",
            "hit-forced",
            (
                *first,
                completed(),
                Create(RunSpec("second", StateSpec("PENDING"))),
                Propose(StateSpec("RUNNING", details=key), "second", force=True),
            ),
        ),
        Scenario(
            "cache",
            "key-too-long",
            (*first, Propose(StateSpec("COMPLETED", details={"cache_key": "x" * 2100}))),
        ),
    ]


def slots() -> list[Scenario]:
    def runs(*aliases: str) -> tuple[Step, ...]:
        return tuple(Create(RunSpec(a, StateSpec("PENDING"), tags=("db",))) for a in aliases)

    def start(alias: str, force: bool = False) -> Propose:
        return Propose(StateSpec("RUNNING"), alias, force)

    def go(alias: str, type_: str, force: bool = False) -> Propose:
        return Propose(StateSpec(type_), alias, force)

    one = {"db": 1}
    return [
        Scenario("slots", "free", (*runs("a"), start("a"), go("a", "COMPLETED")), limits=one),
        Scenario("slots", "full-waits", (*runs("a", "b"), start("a"), start("b")), limits=one),
        Scenario(
            "slots",
            "freed-by-completion",
            (*runs("a", "b"), start("a"), start("b"), go("a", "COMPLETED"), start("b")),
            limits=one,
        ),
        Scenario("slots", "zero-aborts", (*runs("a"), start("a")), limits={"db": 0}),
        Scenario("slots", "forced-running-takes-none", (*runs("a"), start("a", True)), limits=one),
        Scenario(
            "slots",
            "forced-exit-releases",
            (*runs("a"), start("a"), go("a", "COMPLETED", True)),
            limits=one,
        ),
        Scenario(
            "slots", "running-twice-keeps-one", (*runs("a"), start("a"), start("a")), limits=one
        ),
        Scenario(
            "slots", "failed-releases", (*runs("a"), start("a"), go("a", "FAILED")), limits=one
        ),
        Scenario(
            "slots",
            "cache-hit-despite-full",
            (
                Create(RunSpec("a", StateSpec("PENDING"), tags=("db",))),
                start("a"),
                Propose(StateSpec("COMPLETED", details={"cache_key": "s"}), "a"),
                *runs("b", "c"),
                start("b"),
                Propose(StateSpec("RUNNING", details={"cache_key": "s"}), "c"),
            ),
            limits=one,
        ),
        Scenario(
            "slots",
            "running-twice-under-two",
            (*runs("a"), start("a"), start("a")),
            limits={"db": 2},
        ),
        Scenario(
            "slots",
            "cancelling-releases",
            (*runs("a"), start("a"), go("a", "CANCELLING")),
            limits=one,
        ),
        Scenario(
            "slots",
            "cancelling-then-cancelled",
            (*runs("a"), start("a"), go("a", "CANCELLING"), go("a", "CANCELLED")),
            limits=one,
        ),
        Scenario(
            "slots",
            "untagged-ignores",
            (Create(RunSpec("a", StateSpec("PENDING"))), start("a")),
            limits=one,
        ),
    ]


def flow_runs() -> list[Scenario]:
    return [
        Scenario(
            "flow", f"start-in-{state}", (_run("PENDING"), _to("RUNNING")), flow_run_state=state
        )
        for state in TYPES
    ] + [
        Scenario(
            "flow",
            "tracker-set",
            (_run("PENDING"), _to("RUNNING"), _to("COMPLETED")),
            flow_run_state="RUNNING",
        ),
        Scenario(
            "flow",
            "flow-retry-renames",
            (
                _run("PENDING"),
                _to("RUNNING"),
                _to("FAILED"),
                SetFlowRun("FAILED"),
                SetFlowRun("RUNNING"),
                _to("RUNNING"),
            ),
            flow_run_state="RUNNING",
        ),
        Scenario(
            "flow",
            "flow-retry-completed-unpersisted",
            (
                _run("PENDING"),
                _to("RUNNING"),
                _to("COMPLETED"),
                SetFlowRun("FAILED"),
                SetFlowRun("RUNNING"),
                _to("RUNNING"),
            ),
            flow_run_state="RUNNING",
        ),
        Scenario(
            "flow",
            "flow-retry-pending-first",
            (
                _run("PENDING"),
                _to("RUNNING"),
                _to("FAILED"),
                SetFlowRun("FAILED"),
                SetFlowRun("RUNNING"),
                _to("PENDING"),
                _to("RUNNING"),
            ),
            flow_run_state="RUNNING",
        ),
        Scenario(
            "flow",
            "paused-then-resumed",
            (_run("PENDING"), _to("RUNNING"), SetFlowRun("RUNNING"), _to("RUNNING")),
            flow_run_state="PAUSED",
        ),
    ]


def background() -> list[Scenario]:
    """Runs proposed with `deferred`: the background task policy."""
    deferred = {"deferred": True}
    scheduled = Create(
        RunSpec(
            state=StateSpec("SCHEDULED", details={"deferred": True, "task_parameters_id": TPID}),
            in_flow_run=False,
        )
    )

    def to(type_: str, name: str | None = None, force: bool = False, **more: object) -> Propose:
        return Propose(StateSpec(type_, name, {**deferred, **more}), force=force)

    return [
        Scenario("background", "parameters-carried", (scheduled, to("PENDING"), to("RUNNING"))),
        Scenario(
            "background",
            "parameters-carried-forced",
            (scheduled, to("PENDING", force=True), to("RUNNING", force=True)),
        ),
        Scenario(
            "background",
            "own-parameters-kept",
            (scheduled, to("PENDING", task_parameters_id="0b5e1d2c-0000-4000-8000-000000000002")),
        ),
        Scenario("background", "pending-after-pending", (scheduled, to("PENDING"), to("PENDING"))),
        Scenario(
            "background",
            "submitting-after-pending",
            (scheduled, to("PENDING"), to("PENDING", "Submitting")),
        ),
        Scenario(
            "background",
            "pending-after-running",
            (scheduled, to("PENDING"), to("RUNNING"), to("PENDING")),
        ),
        Scenario(
            "background",
            "pending-after-running-forced",
            (scheduled, to("PENDING"), to("RUNNING"), to("PENDING", force=True)),
        ),
        Scenario(
            "background",
            "running-after-running",
            (scheduled, to("PENDING"), to("RUNNING"), to("RUNNING")),
        ),
        Scenario(
            "background",
            "no-slot-check",
            (
                Create(RunSpec("run", StateSpec("PENDING"), tags=("db",), in_flow_run=False)),
                to("RUNNING"),
            ),
            limits={"db": 0},
        ),
        Scenario(
            "background",
            "no-stopped-flow-check",
            (_run("PENDING"), to("RUNNING")),
            flow_run_state="COMPLETED",
        ),
        Scenario(
            "background",
            "early-running-waits",
            (
                Create(
                    RunSpec(
                        state=StateSpec("SCHEDULED", scheduled_in=3600, details=deferred),
                        in_flow_run=False,
                    )
                ),
                to("RUNNING"),
            ),
        ),
        Scenario(
            "background",
            "retry",
            (
                Create(
                    RunSpec(
                        state=StateSpec("SCHEDULED", details=deferred), retries=1, in_flow_run=False
                    )
                ),
                to("PENDING"),
                to("RUNNING"),
                to("FAILED"),
                to("RUNNING"),
            ),
        ),
    ]


def deletes() -> list[Scenario]:
    return [
        Scenario("delete", "then-propose", (_run("PENDING"), Delete(), _to("RUNNING"))),
        Scenario(
            "delete",
            "running-with-slot",
            (Create(RunSpec(state=StateSpec("PENDING"), tags=("db",))), _to("RUNNING"), Delete()),
            limits={"db": 1},
        ),
    ]


def duplicates() -> list[Scenario]:
    tid = {"transition_id": "0b5e1d2c-0000-4000-8000-0000000000aa"}
    return [
        Scenario(
            "duplicate",
            "same-transition-twice",
            (_run("PENDING"), _to("RUNNING", **tid), _to("RUNNING", **tid)),
        ),
    ]


def reads() -> list[Scenario]:
    """Filters, sorts, counts and paging over five runs in different states."""
    population: tuple[Step, ...] = (
        Create(RunSpec("a", StateSpec("COMPLETED"), tags=("all",))),
        Create(RunSpec("b", StateSpec("SCHEDULED", scheduled_in=600), tags=("all",))),
        Create(RunSpec("c", StateSpec("SCHEDULED", scheduled_in=60), tags=("all",))),
        Create(RunSpec("d", StateSpec("RUNNING"), tags=("all", "x"))),
        Create(RunSpec("e", StateSpec("FAILED"), tags=("all",))),
    )
    queries = {
        "newest-first": Query(),
        "by-state": Query(states=("SCHEDULED", "RUNNING")),
        "not-started": Query(start_time_null=True, sort="NAME_ASC"),
        "started": Query(start_time_null=False, sort="NAME_DESC"),
        "expected-start-asc": Query(sort="EXPECTED_START_TIME_ASC"),
        "expected-start-desc": Query(sort="EXPECTED_START_TIME_DESC"),
        "next-scheduled": Query(sort="NEXT_SCHEDULED_START_TIME_ASC"),
        "end-time-desc": Query(states=("COMPLETED", "FAILED", "RUNNING"), sort="END_TIME_DESC"),
        "name-like": Query(name_like="%-d", sort="NAME_ASC"),
        "page-two": Query(sort="NAME_ASC", limit=2, offset=2),
    }
    return [
        Scenario("reads", name, (*population, query), flow_run_state="RUNNING")
        for name, query in queries.items()
    ]


def all_scenarios() -> list[Scenario]:
    return [
        *matrix(),
        *creates(),
        *lifecycle(),
        *scheduling(),
        *retries(),
        *caching(),
        *slots(),
        *flow_runs(),
        *background(),
        *deletes(),
        *duplicates(),
        *reads(),
    ]
