"""Fixtures for the dashboard: a real browser on the session's server's dashboard."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from taskrun_server.server import RunningServer
from tests.dashboard.browser import MISSING, Browser

pytestmark = pytest.mark.skipif(MISSING is not None, reason=MISSING or "")


@pytest.fixture
async def browser(fresh_server: RunningServer) -> AsyncIterator[Browser]:
    if MISSING is not None:
        pytest.skip(MISSING)
    assert fresh_server.dashboard_port is not None
    opened = Browser(f"http://127.0.0.1:{fresh_server.dashboard_port}")
    yield opened
    opened.close()
