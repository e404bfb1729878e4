"""Fixtures shared by the API tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.factories import TaskRunStub
from tests.subscriptions import Opener, Subscription


@pytest.fixture
def subscriptions(task_runs: TaskRunStub) -> Iterator[Opener]:
    """Opens subscriptions for a test and cancels them at its end."""
    opened: list[Subscription] = []

    def open_one(*keys: str, prefetch: int = 10) -> Subscription:
        opened.append(Subscription(task_runs, *keys, prefetch=prefetch))
        return opened[-1]

    yield open_one
    for subscription in opened:
        subscription.cancel()
