"""Answers that always fit: a list answer stops before it would pass a client's receive limit.

gRPC clients refuse messages over 4 MiB unless told otherwise, and what runs and states carry
is the callers' to choose. So a list is encoded item by item and cut short, with `truncated`
set, before the encoded answer would pass the budget; the caller reads on from where it
stopped. A single item always fits: request limits keep any one run or state well under it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import TypeVar

from google.protobuf.internal.containers import RepeatedCompositeFieldContainer
from google.protobuf.message import Message

ANSWER_BUDGET_BYTES = 3_500_000
"""Under 4 MiB with room for the answer's other fields and gRPC's framing."""

M = TypeVar("M", bound=Message)
Item = TypeVar("Item")


def add_within_budget(
    field: RepeatedCompositeFieldContainer[M],
    items: Iterable[Item],
    add: Callable[[Item, RepeatedCompositeFieldContainer[M]], M],
    budget: int = ANSWER_BUDGET_BYTES,
) -> bool:
    """Add the items to the answer's list `field` in order (`add` encodes one into the field
    and returns it) while the encoded answer stays within `budget` bytes; whether any were
    left out. Items are encoded in place: a message built apart and then put in a list is
    copied whole, which cost about 0.3 ms for 200 runs."""
    used = 0
    for item in items:
        size = add(item, field).ByteSize() + 8  # the field's tag and length prefix, generously
        if used + size > budget and used:
            del field[-1]
            return True
        used += size
    return False
