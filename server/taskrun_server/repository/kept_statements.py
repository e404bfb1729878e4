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
"""A query named by more than this (a filter of a thousand ids, say) is built each time and
never kept: a client must not fill the server's memory with its questions."""


class KeptStatements:
    """A bounded map from a question (a kind of statement and the query it is for) to what was
    built for it. A query is named by its repr, which gives every field and value. One per
    process, used from its event loop only: no lock."""

    def __init__(self, kept: int = KEPT) -> None:
        self._kept = kept
        self._built: OrderedDict[tuple[Hashable, str], Any] = OrderedDict()

    def get(self, kind: Hashable, query: object, build: Callable[[], T]) -> T:
        """What was built as `kind` for `query`, building it now if it was not kept (a None
        built is kept too); a query too long to keep is built each time."""
        name = repr(query)
        if len(name) > MAX_KEY_CHARS:
            return build()
        key = (kind, name)
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
"""The process's kept statements, shared by the repository modules (each names its kinds)."""
