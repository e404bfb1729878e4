"""Charts as SVG drawn on the server: geometry only, colours come from the stylesheet's
classes (one per state type), so the page needs no chart library and no inline styles."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from taskrun_server.domain.history import HistoryInterval
from taskrun_server.domain.states import State, StateType


@dataclass(frozen=True, slots=True)
class Rect:
    x: float
    y: float
    width: float
    height: float
    css: str
    title: str


@dataclass(frozen=True, slots=True)
class Chart:
    width: float
    height: float
    rects: list[Rect]
    labels: list[tuple[float, str]]
    """(x, text) under the bars."""
    top: int
    """The count the chart's height stands for."""


def state_css(state_type: StateType | str | None) -> str:
    return f"st-{str(state_type).lower()}" if state_type else "st-none"


def history_chart(intervals: Sequence[HistoryInterval], width: float = 900) -> Chart:
    """A bar per bucket, stacked by state type in the contract's order."""
    height = 220.0
    order = list(StateType)
    totals = [sum(s.count_runs for s in i.states) for i in intervals]
    top = max(totals, default=0) or 1
    slot = width / max(len(intervals), 1)
    bar = max(slot * 0.8, 1.0)
    rects: list[Rect] = []
    labels: list[tuple[float, str]] = []
    every = max(1, len(intervals) // 12)
    for i, interval in enumerate(intervals):
        x = i * slot + (slot - bar) / 2
        y = height
        for state in sorted(interval.states, key=lambda s: order.index(s.state_type)):
            h = state.count_runs / top * (height - 10)
            y -= h
            when = interval.interval_start.strftime("%m-%d %H:%M")
            title = f"{when}: {state.count_runs} {state.state_name}"
            rects.append(Rect(x, y, bar, h, state_css(state.state_type), title))
        if i % every == 0:
            labels.append((x, interval.interval_start.strftime("%H:%M")))
    return Chart(width=width, height=height, rects=rects, labels=labels, top=top)


def timeline(states: Sequence[State], now: datetime, width: float = 900) -> Chart:
    """The run's states side by side, each as wide as it lasted (the current one until now);
    every state gets at least a sliver, so that short ones can still be seen and pointed at."""
    if not states:
        return Chart(width=width, height=28, rects=[], labels=[], top=0)
    spans = durations(states, now)
    total = sum(spans) or 1.0
    sliver = min(6.0, width / (len(states) * 2))
    room = width - sliver * len(states)
    rects: list[Rect] = []
    x = 0.0
    for state, span in zip(states, spans, strict=True):
        w = sliver + room * span / total
        title = f"{state.name}: {format_seconds(span)}"
        rects.append(Rect(x, 0, w, 28, state_css(state.type), title))
        x += w
    return Chart(width=width, height=28, rects=rects, labels=[], top=0)


def durations(states: Sequence[State], now: datetime) -> list[float]:
    """How long each state lasted, in seconds: until the next one, the last until now."""
    ends = [s.timestamp for s in states[1:]] + [max(now, states[-1].timestamp)] if states else []
    return [
        max((end - s.timestamp).total_seconds(), 0.0) for s, end in zip(states, ends, strict=True)
    ]


def format_seconds(seconds: float) -> str:
    if seconds >= 86400:
        return f"{seconds / 86400:.1f} d"
    if seconds >= 3600:
        return f"{seconds / 3600:.1f} h"
    if seconds >= 60:
        return f"{seconds / 60:.1f} min"
    if seconds >= 1:
        return f"{seconds:.1f} s"
    return f"{seconds * 1000:.0f} ms"
