"""The dashboard in a real browser (headless Chromium) against a real server with real data:
every page, the runs filter, a run's timeline, a cancellation followed live."""

from __future__ import annotations

import uuid

import pytest

from taskrun.v1 import concurrency_limits_pb2 as limits_pb
from taskrun.v1 import resources_pb2, state_pb2
from taskrun.v1 import task_run_service_pb2 as pb
from tests.dashboard.browser import MISSING, Browser
from tests.factories import (
    LimitStub,
    LogStub,
    TaskRunStub,
    create_run,
    hours,
    now,
    propose,
    scheduled,
    state,
)

pytestmark = pytest.mark.skipif(MISSING is not None, reason=MISSING or "")
T = state_pb2


async def some_runs(task_runs: TaskRunStub, logs: LogStub, limits: LimitStub) -> str:
    """Runs in every kind of state, some tagged, one with logs and a slot; returns its id."""
    await limits.CreateConcurrencyLimit(
        limits_pb.CreateConcurrencyLimitRequest(tag="db", concurrency_limit=2)
    )
    busy = await create_run(
        task_runs, name="nightly-load", task_key="etl.load", tags=["db", "nightly"],
        parameters={"day": "2026-12-01"},
    )  # fmt: skip
    await propose(task_runs, busy.id, state(T.STATE_TYPE_RUNNING))
    await logs.CreateLogs(
        resources_pb2.CreateLogsRequest(
            logs=[
                resources_pb2.LogCreate(
                    name="etl", level=20, message="loaded 42 rows", task_run_id=busy.id
                )
            ]
        )
    )
    for i, kind in enumerate(
        (T.STATE_TYPE_COMPLETED, T.STATE_TYPE_FAILED, T.STATE_TYPE_COMPLETED, T.STATE_TYPE_CRASHED)
    ):
        await create_run(task_runs, name=f"extract-{i}", task_key="etl.extract", state=state(kind))
    await create_run(
        task_runs, name="later", task_key="etl.report", state=scheduled(now() + hours(2))
    )
    await create_run(task_runs, name="queued", task_key="etl.report", state=scheduled(now()))
    return busy.id


async def test_every_page_loads_without_a_console_error(
    browser: Browser, task_runs: TaskRunStub, logs: LogStub, limits: LimitStub
) -> None:
    busy = await some_runs(task_runs, logs, limits)
    worker = task_runs.SubscribeScheduledTasks(
        pb.SubscribeScheduledTasksRequest(task_keys=["etl.report"], client_id="worker-7")
    )
    await worker.read()  # a delivery: a lease held, a subscriber connected
    pages = {
        "runs": "/",
        "run": f"/runs/{busy}",
        "history": "/history?since=6h",
        "queues": "/queues",
        "limits": "/limits",
    }
    for name, path in pages.items():
        await browser.open(path)
        await browser.until(
            lambda: browser.driver.execute_script("return document.readyState") == "complete"
        )
        assert await browser.text("h1"), name
        await browser.screenshot(name)
        assert await browser.console_errors() == [], name
    assert "nightly-load" in await browser.text("#limits")
    await browser.open("/queues")
    assert "etl.report" in await browser.text("#queues")  # one queued, one not yet due
    assert "worker-7" in await browser.text("#holders")
    assert "worker-7" in await browser.text("#subscribers")
    worker.cancel()


async def test_a_filter_narrows_the_runs_list(
    browser: Browser, task_runs: TaskRunStub, logs: LogStub, limits: LimitStub
) -> None:
    await some_runs(task_runs, logs, limits)
    await browser.open("/")
    everything = len(await browser.find_all("#runs tbody tr[data-run]"))
    assert everything == 7
    await browser.click("input[name=state][value=FAILED]")
    await browser.click("input[name=state][value=CRASHED]")
    await browser.click("#apply")
    await browser.until(lambda: "state=FAILED" in browser.driver.current_url)
    rows = await browser.find_all("#runs tbody tr[data-run]")
    names = sorted(
        [await browser.do(lambda r=r: r.find_element("css selector", "a").text) for r in rows]
    )
    assert names == ["extract-1", "extract-3"]
    assert "FAILED 1" in await browser.text("#counts")


async def test_opening_a_run_shows_its_timeline(
    browser: Browser, task_runs: TaskRunStub, logs: LogStub, limits: LimitStub
) -> None:
    busy = await some_runs(task_runs, logs, limits)
    await browser.open("/")
    await browser.click(f"tr[data-run='{busy}'] a")
    await browser.until(lambda: busy in browser.driver.current_url)
    segments = await browser.find_all("#timeline rect")
    assert len(segments) == 2  # PENDING, then RUNNING
    states = await browser.text("#states")
    assert "Pending" in states and "Running" in states
    assert "2026-12-01" in await browser.text("#parameters")
    assert "loaded 42 rows" in await browser.text("#logs")


async def test_cancelling_a_running_run_from_the_page_is_followed_live(
    browser: Browser, task_runs: TaskRunStub, logs: LogStub, limits: LimitStub
) -> None:
    busy = await some_runs(task_runs, logs, limits)
    await browser.open(f"/runs/{busy}")
    await browser.click("#cancel")
    await browser.until(lambda: browser.driver.find_element("id", "run-state").text == "Cancelling")
    read = await task_runs.ReadTaskRun(pb.ReadTaskRunRequest(task_run_id=busy))
    assert read.task_run.state_type == T.STATE_TYPE_CANCELLING
    await browser.script("window.notReloaded = true")
    # The worker acknowledges: the page follows without being reloaded.
    await propose(task_runs, busy, state(T.STATE_TYPE_CANCELLED))
    await browser.until(lambda: browser.driver.find_element("id", "run-state").text == "Cancelled")
    await browser.until(lambda: "Cancelled" in browser.driver.find_element("id", "states").text)
    assert await browser.script("return window.notReloaded") is True
    assert await browser.console_errors() == []


async def test_the_runs_list_follows_changes_live(browser: Browser, task_runs: TaskRunStub) -> None:
    run = await create_run(task_runs, name=f"live-{uuid.uuid4().hex[:6]}")
    await browser.open("/")
    await browser.script("window.notReloaded = true")
    await propose(task_runs, run.id, state(T.STATE_TYPE_RUNNING))
    cell = f"tr[data-run='{run.id}'] .state"
    await browser.until(lambda: browser.driver.find_element("css selector", cell).text == "Running")
    newcomer = await create_run(task_runs, name="newcomer")
    await browser.until(
        lambda: browser.driver.find_elements("css selector", f"tr[data-run='{newcomer.id}']")
    )
    assert await browser.script("return window.notReloaded") is True
