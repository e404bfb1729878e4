"""Statements kept per question: building a SQLAlchemy statement and computing its cache key
costs Python time on every call, as much as a third of a history's or a count's server CPU,
while a dashboard, a poller or a benchmark asks the same question again and again. A kept
statement is built once; whatever changes between calls with the same question (a time, the
buckets) must be a bound parameter given at execution, never a value built into it."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Any, TypeVar, cast

T = TypeVar("T")

KEPT = 512
"""How many questions are kept: the most recently used ones."""

MAX_KEY_CHARS = 4096
"""A question named by more than this (a filter of a thousand ids, say) is built each time and
never kept: a client must not fill the server's memory with its questions."""


def question(query: object) -> str | None:
    """The key of a query (its repr, which names every field and value), or None when it is
    too long to keep."""
    text = repr(query)
    return text if len(text) <= MAX_KEY_CHARS else None


class KeptStatements:
    """A bounded map from a question (a hashable key naming its kind and `question(query)`) to
    what was built for it. One per process, used from its event loop only: no lock."""

    def __init__(self, kept: int = KEPT) -> None:
        self._kept = kept
        self._built: OrderedDict[Hashable, Any] = OrderedDict()

    def get(self, key: Hashable, build: Callable[[], T]) -> T:
        """What was built for `key`, building it now if it was not kept (a None built is kept
        too). A key holding None (a question too long to keep) is built and not kept."""
        if key is None or (isinstance(key, tuple) and None in key):
            return build()
        try:
            self._built.move_to_end(key)
            return cast(T, self._built[key])
        except KeyError:
            pass
        built = self._built[key] = build()
        if len(self._built) > self._kept:
            self._built.popitem(last=False)
        return built


KEPT_STATEMENTS = KeptStatements()
"""The process's kept statements, shared by the repository modules (keys name their kind)."""
