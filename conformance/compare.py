"""Compare two scenario recordings field by field, and sort what differs into the deliberate
differences (the README's table) and bugs."""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass
from typing import Any

from conformance.observation import Observation


@dataclass(frozen=True)
class Deliberate:
    """A difference taskrun keeps on purpose: scenarios and fields it covers, and why."""

    scenarios: str
    fields: str
    why: str


DELIBERATE = (
    Deliberate(
        "duplicate/*",
        "step2.*",
        "a repeated transition_id is rejected with nothing stored (Prefect stores it again)",
    ),
    Deliberate(
        "slots/cancelling-*",
        "step2.slots.*",
        "slots are released on CANCELLING, not only when the run is finally CANCELLED",
    ),
    Deliberate(
        "slots/running-twice-under-two",
        "step2.slots.*",
        "a run holds at most one slot per tag (Prefect counts a second start twice)",
    ),
    Deliberate(
        "delete/running-with-slot",
        "step2.slots.*",
        "deleting a run releases the slots it holds (Prefect leaves them taken)",
    ),
    Deliberate(
        "cache/key-too-long",
        "step2.*",
        "validation is stricter: a cache key over 1,024 bytes is INVALID_ARGUMENT",
    ),
)
TOLERANCE = {"delay": 1}
"""Waits are drawn at random (slot waits) or measured against a clock that moved between the
two calls (scheduled times): they agree when within a second of each other."""


def flatten(value: Any, path: str = "") -> dict[str, Any]:
    if isinstance(value, dict):
        flat: dict[str, Any] = {}
        for key, inner in value.items():
            flat.update(flatten(inner, f"{path}.{key}" if path else str(key)))
        return flat
    return {path: value}


def steps(recording: list[Observation]) -> dict[str, Any]:
    return flatten({f"step{i}": seen for i, seen in enumerate(recording)})


@dataclass(frozen=True)
class Difference:
    field: str
    prefect: Any
    taskrun: Any
    deliberate: Deliberate | None


def differences(
    key: str, prefect: list[Observation], taskrun: list[Observation]
) -> list[Difference]:
    left, right = steps(prefect), steps(taskrun)
    found = []
    for name in sorted(set(left) | set(right)):
        theirs, ours = left.get(name, "<absent>"), right.get(name, "<absent>")
        if not _agree(name, theirs, ours):
            found.append(Difference(name, theirs, ours, _deliberate(key, name)))
    return found


def _agree(name: str, left: Any, right: Any) -> bool:
    tolerance = TOLERANCE.get(name.rsplit(".", 1)[-1])
    numbers = isinstance(left, int | float) and isinstance(right, int | float)
    if tolerance is not None and numbers:
        return bool(abs(left - right) <= tolerance)
    return bool(left == right)


def _deliberate(key: str, field: str) -> Deliberate | None:
    for known in DELIBERATE:
        if fnmatch.fnmatchcase(key, known.scenarios) and fnmatch.fnmatchcase(field, known.fields):
            return known
    return None
