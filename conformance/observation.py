"""What a step looks like from outside, in one shape for both servers: the answer to a
proposal and the run as read back afterwards. Times are compared by presence only (the two
servers never share a clock), ids by the scenario's own aliases."""

from __future__ import annotations

from typing import Any

Observation = dict[str, Any]

COMPARED_DETAILS = (
    "scheduled_time",
    "cache_key",
    "cache_expiration",
    "refresh_cache",
    "retriable",
    "deferred",
    "task_parameters_id",
    "transition_id",
)
PRESENCE_ONLY = {"scheduled_time", "cache_expiration"}


def details(raw: dict[str, Any], prefix: str) -> dict[str, Any]:
    """The compared state details, with the scenario's unique prefix taken off cache keys and
    times reduced to whether they are set. Falsy booleans and absent ones are kept apart."""
    seen: dict[str, Any] = {}
    for name in COMPARED_DETAILS:
        value = raw.get(name)
        if name in PRESENCE_ONLY:
            value = value is not None
        elif name == "cache_key" and isinstance(value, str):
            value = value.removeprefix(prefix)
        elif name == "deferred" and value is None:
            value = False  # Prefect's default is False; taskrun's optional unset means the same
        seen[name] = value
    return seen


def state(
    type_: str | None, name: str | None, raw_details: dict[str, Any] | None, prefix: str
) -> Observation | None:
    if type_ is None:
        return None
    return {
        "type": type_,
        "name": name,
        "details": details(raw_details or {}, prefix),
    }
