"""The dashboard's URL parameters: which runs a page shows, and the links that change that.

Every page's filters live in its URL (shareable, bookmarkable, and what the live updates
subscribe with); bad values are refused naming the parameter, as the API does.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlencode

from taskrun_server.domain.errors import InvalidArgument
from taskrun_server.domain.filters import (
    NameFilter,
    NullableIdFilter,
    StateFilter,
    TagsFilter,
    TaskKeyFilter,
    TaskRunFilter,
    TaskRunQuery,
    TaskRunSort,
    TimeFilter,
)
from taskrun_server.domain.states import StateType

WINDOWS = {"1h": 3600, "6h": 6 * 3600, "24h": 86400, "7d": 7 * 86400, "30d": 30 * 86400}
"""The time windows a page offers, by name."""
BUCKETS = {"1m": 60, "5m": 300, "15m": 900, "1h": 3600, "6h": 21600, "1d": 86400}
PER_PAGE = (25, 50, 100, 200)
_RELATIVE = re.compile(r"^(\d+)([mhd])$")
_UNIT_SECONDS = {"m": 60, "h": 3600, "d": 86400}


class Params:
    """Query parameters as a multi-dict gives them (aiohttp's, or a plain dict of lists)."""

    def __init__(self, source: Mapping[str, Any]) -> None:
        self._source = source

    def all(self, name: str) -> list[str]:
        getall = getattr(self._source, "getall", None)
        values = getall(name, []) if getall else self._source.get(name, [])
        return [str(v) for v in (values if isinstance(values, list) else [values]) if str(v)]

    def one(self, name: str, default: str = "") -> str:
        values = self.all(name)
        return values[-1].strip() if values else default


@dataclass(frozen=True, slots=True)
class RunsView:
    states: tuple[StateType, ...] = ()
    tags: tuple[str, ...] = ()
    task_key: str = ""
    flow_run: str = ""
    name: str = ""
    since: str = ""
    sort: TaskRunSort = TaskRunSort.ID_DESC
    page: int = 1
    per_page: int = 50
    extra: dict[str, str] = field(default_factory=dict)

    def query(self, now: datetime | None = None) -> TaskRunQuery:
        """The runs this view selects."""
        f = TaskRunFilter()
        if self.states:
            f.state = StateFilter(type_any=list(self.states))
        if self.tags:
            f.tags = TagsFilter(all=list(self.tags))
        if self.task_key:
            f.task_key = TaskKeyFilter(any=[self.task_key])
        if self.flow_run:
            f.flow_run_id = NullableIdFilter(any=[uuid.UUID(self.flow_run)])
        if self.name:
            f.name = NameFilter(like=self.name)
        if self.since:
            start = (now or datetime.now(UTC)) - timedelta(seconds=window_seconds(self.since))
            f.expected_start_time = TimeFilter(after=start)
        return TaskRunQuery(task_runs=f)

    def params(self, **changes: Any) -> str:
        """This view's URL query, with `changes` (the links of a page: another page, a state)."""
        view = replace(self, **changes)
        pairs: list[tuple[str, str]] = [("state", s.value) for s in view.states]
        pairs += [("tag", t) for t in view.tags]
        for key, value in (
            ("task_key", view.task_key),
            ("flow_run", view.flow_run),
            ("name", view.name),
            ("since", view.since),
        ):
            if value:
                pairs.append((key, value))
        if view.sort is not TaskRunSort.ID_DESC:
            pairs.append(("sort", view.sort.name))
        if view.page != 1:
            pairs.append(("page", str(view.page)))
        if view.per_page != 50:
            pairs.append(("per_page", str(view.per_page)))
        pairs += sorted(view.extra.items())
        return urlencode(pairs)

    @property
    def filtered(self) -> bool:
        return bool(
            self.states or self.tags or self.task_key or self.flow_run or self.name or self.since
        )


def parse_runs_view(source: Mapping[str, Any], *, keep: Sequence[str] = ()) -> RunsView:
    """The view a page's URL asks for; InvalidArgument names the parameter at fault. `keep`:
    other parameters of the page, carried along in its links."""
    p = Params(source)
    states = []
    for value in p.all("state"):
        try:
            states.append(StateType(value.upper()))
        except ValueError:
            raise InvalidArgument(f"{value!r} is not a state type", "state") from None
    flow_run = p.one("flow_run")
    if flow_run:
        try:
            flow_run = str(uuid.UUID(flow_run))
        except ValueError:
            raise InvalidArgument(f"{flow_run!r} is not a UUID", "flow_run") from None
    since = p.one("since")
    if since:
        window_seconds(since)  # refuses what it cannot read
    sort_name = p.one("sort", "ID_DESC").upper()
    try:
        sort = TaskRunSort[sort_name]
    except KeyError:
        raise InvalidArgument(f"{sort_name!r} is not a sort", "sort") from None
    tags = tuple(t.strip() for value in p.all("tag") for t in value.split(",") if t.strip())
    return RunsView(
        states=tuple(dict.fromkeys(states)),
        tags=tags,
        task_key=p.one("task_key"),
        flow_run=flow_run,
        name=p.one("name"),
        since=since,
        sort=sort,
        page=_positive(p.one("page", "1"), "page"),
        per_page=_choice(_positive(p.one("per_page", "50"), "per_page"), PER_PAGE, "per_page"),
        extra={name: p.one(name) for name in keep if p.one(name)},
    )


def window_seconds(value: str) -> int:
    """`90m`, `6h`, `7d`: a window's length in seconds."""
    matched = _RELATIVE.match(value.strip())
    if not matched or int(matched.group(1)) == 0:
        raise InvalidArgument(f"{value!r} is not a window such as 90m, 6h or 7d", "since")
    seconds = int(matched.group(1)) * _UNIT_SECONDS[matched.group(2)]
    if seconds > 400 * 86400:
        raise InvalidArgument("is longer than 400 days", "since")
    return seconds


def _positive(value: str, name: str) -> int:
    if not value.isdigit() or int(value) < 1 or int(value) > 1_000_000:
        raise InvalidArgument(f"{value!r} is not a positive whole number", name)
    return int(value)


def _choice(value: int, allowed: Sequence[int], name: str) -> int:
    if value not in allowed:
        raise InvalidArgument(f"must be one of {', '.join(map(str, allowed))}", name)
    return value
