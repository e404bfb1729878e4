"""Answers that always fit: a list answer stops before it would pass a client's receive limit.

gRPC clients refuse messages over 4 MiB unless told otherwise, and what runs and states carry
is the callers' to choose. So a list is encoded item by item and cut short, with `truncated`
set, before the encoded answer would pass the budget; the caller reads on from where it
stopped. A single item always fits: request limits keep any one run or state well under it.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TypeVar

from google.protobuf.message import Message

ANSWER_BUDGET_BYTES = 3_500_000
"""Under 4 MiB with room for the answer's other fields and gRPC's framing."""

M = TypeVar("M", bound=Message)


def within_budget(items: Iterable[M], budget: int = ANSWER_BUDGET_BYTES) -> tuple[list[M], bool]:
    """The items, in order, that fit in `budget` bytes encoded; and whether any were left out."""
    kept: list[M] = []
    used = 0
    for item in items:
        size = item.ByteSize() + 8  # the field's tag and length prefix, generously
        if used + size > budget and kept:
            return kept, True
        kept.append(item)
        used += size
    return kept, False
