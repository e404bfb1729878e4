"""Who may use the dashboard: with bearer tokens configured, nothing but the login page without
a session; the session cookie is HttpOnly and SameSite; forms need the session's CSRF token
and this site's origin; forcing a state needs a confirmation."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import grpc
import pytest
from pydantic import SecretStr

from taskrun.v1 import state_pb2 as T
from taskrun.v1 import task_run_service_pb2 as pb
from taskrun.v1 import task_run_service_pb2_grpc
from taskrun_server.server import RunningServer, start_server
from taskrun_server.settings import Settings
from tests.dashboard.browser import MISSING, Browser
from tests.factories import TaskRunStub, create_run

TOKEN = "dashboard-secret-token"


@pytest.fixture
async def guarded(database_url: str, fresh_server: RunningServer) -> AsyncIterator[RunningServer]:
    """A server that asks for a bearer token (on the same, emptied, database)."""
    settings = Settings(
        database_url=database_url,
        port=0,
        metrics_enabled=False,
        dashboard_port=0,
        auth_tokens=SecretStr(TOKEN),
    )
    running = await start_server(settings, database_url)
    yield running
    await running.stop(grace=0.5)


@pytest.fixture
async def guarded_stub(guarded: RunningServer) -> AsyncIterator[TaskRunStub]:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{guarded.port}") as channel:
        stub: Any = task_run_service_pb2_grpc.TaskRunServiceStub(channel)

        class Authenticated:  # every call with the token
            def __getattr__(self, name: str) -> Any:
                method = getattr(stub, name)
                return lambda request, **kw: method(
                    request, metadata=(("authorization", f"Bearer {TOKEN}"),), **kw
                )

        yield Authenticated()  # type: ignore[misc]


def base(server: RunningServer) -> str:
    return f"http://127.0.0.1:{server.dashboard_port}"


async def test_without_a_session_every_page_is_refused(guarded: RunningServer) -> None:
    async with aiohttp.ClientSession() as http:
        for path in (
            "/",
            "/history",
            "/queues",
            "/limits",
            "/runs/0193a1f2-7c00-7000-8000-000000000000",
        ):
            async with http.get(base(guarded) + path, allow_redirects=False) as answer:
                assert answer.status == 303, path
                assert answer.headers["Location"].startswith("/login?next=")
        async with http.get(base(guarded) + "/events") as answer:
            assert answer.status == 401
        async with http.post(base(guarded) + "/runs/x/cancel", data={"csrf": "x"}) as answer:
            assert answer.status == 401
        async with http.get(base(guarded) + "/login") as answer:
            assert answer.status == 200 and "Bearer token" in await answer.text()


async def test_a_wrong_token_is_refused_and_the_right_one_opens_a_session(
    guarded: RunningServer,
) -> None:
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as http:
        async with http.post(base(guarded) + "/login", data={"token": "guess"}) as answer:
            assert answer.status == 401
        login = {"token": TOKEN, "next": "/queues"}
        async with http.post(base(guarded) + "/login", data=login, allow_redirects=False) as answer:
            assert answer.status == 303 and answer.headers["Location"] == "/queues"
            cookie = answer.headers["Set-Cookie"]
        assert "HttpOnly" in cookie and "SameSite=Strict" in cookie
        assert TOKEN not in cookie
        async with http.get(base(guarded) + "/queues") as answer:
            assert answer.status == 200 and "Queues" in await answer.text()


async def test_forms_need_the_csrf_token_and_this_sites_origin(
    guarded: RunningServer, guarded_stub: TaskRunStub
) -> None:
    run = await create_run(guarded_stub)
    await guarded_stub.SetTaskRunState(
        pb.SetTaskRunStateRequest(
            task_run_id=run.id, state=T.StateCreate(type=T.STATE_TYPE_RUNNING)
        )
    )
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as http:
        await http.post(base(guarded) + "/login", data={"token": TOKEN})
        cancel = base(guarded) + f"/runs/{run.id}/cancel"
        async with http.post(cancel, data={}) as answer:
            assert answer.status == 403  # no CSRF token
        page = await (await http.get(base(guarded) + f"/runs/{run.id}")).text()
        csrf = page.split('name="csrf" value="')[1].split('"')[0]
        elsewhere = {"Origin": "http://evil.example"}
        async with http.post(cancel, data={"csrf": csrf}, headers=elsewhere) as answer:
            assert answer.status == 403  # another site's form
        read = await guarded_stub.ReadTaskRun(pb.ReadTaskRunRequest(task_run_id=run.id))
        assert read.task_run.state_type == T.STATE_TYPE_RUNNING  # nothing was done
        here = {"Origin": base(guarded)}
        async with http.post(cancel, data={"csrf": csrf}, headers=here) as answer:
            assert answer.status == 200  # followed the redirect to the run's page
        read = await guarded_stub.ReadTaskRun(pb.ReadTaskRunRequest(task_run_id=run.id))
        assert read.task_run.state_type == T.STATE_TYPE_CANCELLING


@pytest.mark.skipif(MISSING is not None, reason=MISSING or "")
async def test_in_a_browser_sign_in_then_force_a_state_after_confirming(
    guarded: RunningServer, guarded_stub: TaskRunStub
) -> None:
    run = await create_run(guarded_stub, name="to-force")
    browser = Browser(base(guarded))
    try:
        await browser.open(f"/runs/{run.id}")
        await browser.until(lambda: "/login" in browser.driver.current_url)
        await browser.screenshot("login")
        token = await browser.find("#token")
        await browser.do(token.send_keys, TOKEN)
        await browser.click("#sign-in")
        await browser.until(lambda: browser.driver.find_elements("id", "set-state"))
        cookies = await browser.until(
            lambda: {
                c["name"]: c for c in browser.driver.get_cookies() if c["name"] == "taskrun_session"
            }
        )
        assert cookies["taskrun_session"]["httpOnly"] is True
        assert cookies["taskrun_session"]["sameSite"] == "Strict"
        chooser = await browser.find("select[name=type]")
        await browser.do(
            lambda: chooser.find_element("css selector", "option[value=COMPLETED]").click()
        )
        await browser.click("input[name=force]")
        await browser.click("#set-state")
        await browser.until(lambda: browser.driver.find_elements("id", "confirm"))
        read = await guarded_stub.ReadTaskRun(pb.ReadTaskRunRequest(task_run_id=run.id))
        assert read.task_run.state_type == T.STATE_TYPE_PENDING  # not before confirming
        await browser.click("#confirm")
        await browser.until(
            lambda: browser.driver.find_element("id", "run-state").text == "Completed"
        )
        assert await browser.console_errors() == []
    finally:
        browser.close()
