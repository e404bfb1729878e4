"""The dashboard's pages and actions: each reads through the services (as the gRPC servicers
do) and renders one template; actions propose states through orchestration."""

from __future__ import annotations

import json
import math
import uuid
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlencode

from aiohttp import web
from jinja2 import Environment

from taskrun_server.dashboard import charts
from taskrun_server.dashboard.queries import (
    BUCKETS,
    PER_PAGE,
    WINDOWS,
    RunsView,
    parse_runs_view,
    window_seconds,
)
from taskrun_server.dashboard.sessions import COOKIE, SESSION_SECONDS, Session, Sessions
from taskrun_server.domain.errors import InvalidArgument, NotFound
from taskrun_server.domain.filters import TaskRunSort
from taskrun_server.domain.states import StateCreate, StateDetails, StateType
from taskrun_server.domain.task_runs import StoredTaskRun, TaskRun
from taskrun_server.service.concurrency_limits import ConcurrencyLimitService
from taskrun_server.service.orchestration import OrchestrationService, StateProposal
from taskrun_server.service.queues import RECENT, QueueService
from taskrun_server.service.resources import ResourceService
from taskrun_server.service.task_runs import TaskRunService

SESSION_KEY = web.RequestKey("session", Session)
MAX_BUCKETS = 500
"""The most buckets a history page draws."""


@dataclass(frozen=True, slots=True)
class Services:
    task_runs: TaskRunService
    orchestration: OrchestrationService
    resources: ResourceService
    limits: ConcurrencyLimitService
    queues: QueueService


class Views:
    def __init__(self, services: Services, sessions: Sessions, templates: Environment) -> None:
        self._s = services
        self._sessions = sessions
        self._templates = templates

    def render(self, request: web.Request, name: str, **context: Any) -> web.Response:
        session = request.get(SESSION_KEY)
        page = self._templates.get_template(name).render(
            **context,
            csrf=self._sessions.csrf_token(session) if session else "",
            signed_in=self._sessions.required and session is not None,
            path=request.path,
            states=list(StateType),
            state_css=charts.state_css,
            now=datetime.now(UTC),
        )
        return web.Response(text=page, content_type="text/html")

    # -- runs -------------------------------------------------------------------------------

    async def runs(self, request: web.Request) -> web.Response:
        view = parse_runs_view(request.query)
        query = view.query()
        page = await self._s.task_runs.paginate(
            query, sort=view.sort, limit=view.per_page, page=view.page, bulky=False
        )
        counts = await self._s.task_runs.count_by_state(query)
        template = "runs_table.html" if request.query.get("fragment") else "runs.html"
        return self.render(
            request,
            template,
            view=view,
            page=page,
            counts=counts,
            windows=WINDOWS,
            sorts=[s.name for s in TaskRunSort],
            per_page_choices=PER_PAGE,
        )

    async def run(self, request: web.Request) -> web.Response:
        run_id = _run_id(request.match_info["run_id"])
        run = await self._s.task_runs.read(run_id)
        states = await self._s.task_runs.read_states(run_id, limit=1000)
        logs = await self._s.resources.read_logs(
            task_run_id=run_id, flow_run_id=None, limit=200, offset=0
        )
        now = datetime.now(UTC)
        template = "run_live.html" if request.query.get("fragment") else "run.html"
        durations = charts.durations(states, now)
        return self.render(
            request,
            template,
            run=run,
            history=list(zip(states, durations, strict=True)),
            timeline=charts.timeline(states, now),
            logs=logs,
            parameters=_pretty(run.parameters),
            result=_pretty(run.state.data if run.state else None),
            labels=_pretty(run.labels) if run.labels else "",
            message=request.query.get("message", ""),
            format_seconds=charts.format_seconds,
        )

    async def cancel(self, request: web.Request) -> web.Response:
        """RUNNING runs go to CANCELLING (their worker stops them); others not yet finished,
        straight to CANCELLED."""
        run = await self._s.task_runs.read(_run_id(request.match_info["run_id"]))
        kind = StateType.CANCELLING if run.state_type is StateType.RUNNING else StateType.CANCELLED
        proposal = StateCreate(type=kind, message="Cancelled from the dashboard")
        return await self._propose(run, proposal, force=False)

    async def retry(self, request: web.Request) -> web.Response:
        """Schedule the run again, now, through orchestration (which may refuse: a COMPLETED
        run with a kept result is not rerun)."""
        run = await self._s.task_runs.read(_run_id(request.match_info["run_id"]))
        now = datetime.now(UTC)
        proposal = StateCreate(
            type=StateType.SCHEDULED,
            name="Rescheduled",
            message="Rescheduled from the dashboard",
            state_details=StateDetails(scheduled_time=now),
        )
        return await self._propose(run, proposal, force=False)

    async def set_state(self, request: web.Request) -> web.Response:
        """A state of the operator's choosing; forced ones only after a confirmation page."""
        run = await self._s.task_runs.read(_run_id(request.match_info["run_id"]))
        form = await request.post()
        try:
            kind = StateType(str(form.get("type", "")).upper())
        except ValueError:
            raise InvalidArgument("is not a state type", "type") from None
        force = form.get("force") == "on"
        message = str(form.get("message", ""))[:1000]
        if force and form.get("confirmed") != "yes":
            return self.render(request, "confirm.html", run=run, kind=kind, message=message)
        proposal = StateCreate(type=kind, message=message or "Set from the dashboard")
        return await self._propose(run, proposal, force=force)

    async def _propose(self, run: TaskRun, proposal: StateCreate, *, force: bool) -> web.Response:
        decision = await self._s.orchestration.set_state(
            StateProposal(run.id, proposal, force=force)
        )
        said = f"{decision.status.name}"
        if decision.reason:
            said += f": {decision.reason}"
        raise web.HTTPSeeOther(f"/runs/{run.id}?{urlencode({'message': said})}")

    # -- history ----------------------------------------------------------------------------

    async def history(self, request: web.Request) -> web.Response:
        view = parse_runs_view(request.query, keep=("bucket",))
        window = view.since or "24h"
        bucket = request.query.get("bucket") or _default_bucket(window)
        if bucket not in BUCKETS:
            raise InvalidArgument(f"must be one of {', '.join(BUCKETS)}", "bucket")
        # Buckets on whole multiples of their width (whole hours for hourly ones): what the
        # tally answers without touching the runs, and what reads naturally on an axis.
        width = BUCKETS[bucket]
        seconds = window_seconds(window)
        if math.ceil(seconds / width) > MAX_BUCKETS:
            raise InvalidArgument(
                f"makes more than {MAX_BUCKETS} buckets; choose a wider one", "bucket"
            )
        now = datetime.now(UTC).timestamp()
        end = datetime.fromtimestamp((now // width + 1) * width, UTC)
        start = end - timedelta(seconds=seconds)
        intervals = await self._s.task_runs.history(
            replace(view, since="").query(), start=start, end=end, interval=timedelta(seconds=width)
        )
        template = "history_chart.html" if request.query.get("fragment") else "history.html"
        return self.render(
            request,
            template,
            view=view,
            window=window,
            bucket=bucket,
            windows=WINDOWS,
            buckets=BUCKETS,
            chart=charts.history_chart(intervals),
            intervals=intervals,
        )

    # -- queues and limits ------------------------------------------------------------------

    async def queues(self, request: web.Request) -> web.Response:
        overview = await self._s.queues.overview()
        template = "queues_live.html" if request.query.get("fragment") else "queues.html"
        return self.render(
            request, template, overview=overview, recent_minutes=RECENT.total_seconds() / 60
        )

    async def limits(self, request: web.Request) -> web.Response:
        found = await self._s.limits.read_many(limit=200, offset=0)
        holders: dict[uuid.UUID, StoredTaskRun] = {}
        slots = [slot for limit in found for slot in limit.active_slots]
        if slots:
            holders = await self._s.task_runs.read_among(slots)
        template = "limits_live.html" if request.query.get("fragment") else "limits.html"
        return self.render(request, template, limits=found, holders=holders)

    # -- signing in -------------------------------------------------------------------------

    async def login_page(self, request: web.Request) -> web.Response:
        return self.render(request, "login.html", failed=False, next=_safe_next(request))

    async def login(self, request: web.Request) -> web.Response:
        form = await request.post()
        cookie = self._sessions.login(str(form.get("token", "")))
        if cookie is None:
            response = self.render(request, "login.html", failed=True, next=_safe_next(request))
            response.set_status(401)
            return response
        response = web.HTTPSeeOther(_safe_next(request, str(form.get("next", "/"))))
        _set_session(response, cookie, secure=request.secure)
        raise response

    async def logout(self, request: web.Request) -> web.Response:
        response = web.HTTPSeeOther("/login")
        response.del_cookie(COOKIE, path="/")
        raise response


def _set_session(response: web.StreamResponse, cookie: str, *, secure: bool) -> None:
    response.set_cookie(
        COOKIE,
        cookie,
        httponly=True,
        samesite="Strict",
        secure=secure,
        path="/",
        max_age=SESSION_SECONDS,
    )


def _run_id(text: str) -> uuid.UUID:
    try:
        return uuid.UUID(text)
    except ValueError:
        raise NotFound(f"{text[:64]!r} is not a task run id", "run_id") from None


def _pretty(value: Any) -> str:
    return json.dumps(value, indent=2, sort_keys=True) if value is not None else ""


def _default_bucket(window: str) -> str:
    seconds = window_seconds(window)
    for name, width in BUCKETS.items():
        if seconds / width <= 60:
            return name
    return "1d"


def _safe_next(request: web.Request, wanted: str | None = None) -> str:
    """Where to go after signing in: a path on this site only, never another site."""
    target = wanted if wanted is not None else request.query.get("next", "/")
    return target if target.startswith("/") and not target.startswith("//") else "/"


__all__ = ["SESSION_KEY", "RunsView", "Services", "Views"]
