"""The dashboard's HTTP side: routes, the guard every request passes, live updates by
server-sent events, and the endpoint each server process runs beside its gRPC port."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import ssl
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from urllib.parse import quote

from aiohttp import web
from jinja2 import Environment, FileSystemLoader, select_autoescape

from taskrun_server.dashboard.queries import parse_runs_view
from taskrun_server.dashboard.sessions import COOKIE, Sessions
from taskrun_server.dashboard.views import SESSION_KEY, Services, Views
from taskrun_server.domain.errors import (
    AlreadyExists,
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    TaskRunServiceError,
    Unavailable,
)
from taskrun_server.domain.task_runs import StoredTaskRun
from taskrun_server.service.delivery import ShuttingDown
from taskrun_server.service.watch import WatchService

logger = logging.getLogger(__name__)

HERE = Path(__file__).parent
KEEPALIVE_SECONDS = 15.0
PACE_SECONDS = 0.25
"""A page's event stream reads the runs that changed at most four times a second: the page
fetches its content again at most every half second anyway."""
SECURITY_HEADERS = {
    # Everything the pages use is served from here: no inline script or style, no CDN.
    "Content-Security-Policy": (
        "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
        "frame-ancestors 'none'; form-action 'self'; base-uri 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "X-Frame-Options": "DENY",
}
_STATUS = {
    InvalidArgument: 400,
    NotFound: 404,
    AlreadyExists: 409,
    FailedPrecondition: 409,
    Unavailable: 503,
}

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def templates() -> Environment:
    return Environment(
        loader=FileSystemLoader(HERE / "templates"),
        autoescape=select_autoescape(["html"]),
        trim_blocks=True,
        lstrip_blocks=True,
    )


def build_app(services: Services, sessions: Sessions, watch: WatchService) -> web.Application:
    env = templates()
    views = Views(services, sessions, env)
    app = web.Application(middlewares=[_guard(sessions, env)])
    app.router.add_get("/", views.runs)
    app.router.add_get("/runs/{run_id}", views.run)
    app.router.add_post("/runs/{run_id}/cancel", views.cancel)
    app.router.add_post("/runs/{run_id}/retry", views.retry)
    app.router.add_post("/runs/{run_id}/state", views.set_state)
    app.router.add_get("/history", views.history)
    app.router.add_get("/queues", views.queues)
    app.router.add_get("/limits", views.limits)
    app.router.add_get("/login", views.login_page)
    app.router.add_post("/login", views.login)
    app.router.add_post("/logout", views.logout)
    app.router.add_get("/events", _events(watch))
    app.router.add_static("/static", HERE / "static")
    return app


def _guard(sessions: Sessions, env: Environment) -> Callable[..., Awaitable[web.StreamResponse]]:
    """Static files for anyone; the login page to sign in; everything else with a session.
    A POST must come from this site (Origin) and bring the session's CSRF token."""

    @web.middleware
    async def guard(request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.path.startswith("/static/"):
            return await handler(request)
        try:
            response = await _checked(request, handler, sessions)
        except web.HTTPException as answer:
            _secure(answer)
            raise
        except TaskRunServiceError as error:
            logger.info(
                "dashboard %s %s: %s", request.method, request.path_qs, error, exc_info=True
            )
            response = _error_page(env, error)
        _secure(response)
        return response

    return guard


async def _checked(
    request: web.Request, handler: Handler, sessions: Sessions
) -> web.StreamResponse:
    if request.method == "POST" and not _same_origin(request):
        raise web.HTTPForbidden(text="refused: this form was not sent from the dashboard")
    session = sessions.verify(request.cookies.get(COOKIE))
    if request.path == "/login":
        return await handler(request)
    if session is None:
        if request.method == "GET" and request.path != "/events":
            raise web.HTTPSeeOther(f"/login?next={quote(request.path_qs, safe='')}")
        raise web.HTTPUnauthorized(text="sign in first")
    request[SESSION_KEY] = session
    if request.method == "POST":
        form = await request.post()
        if not sessions.csrf_ok(session, str(form.get("csrf", ""))):
            raise web.HTTPForbidden(text="refused: the form's token is missing or stale")
    return await handler(request)


def _same_origin(request: web.Request) -> bool:
    origin = request.headers.get("Origin")
    if origin is None:  # browsers send it with every POST; tools may not
        return True
    return origin == f"{request.scheme}://{request.host}"


def _secure(response: web.StreamResponse) -> None:
    for name, value in SECURITY_HEADERS.items():
        response.headers.setdefault(name, value)


def _error_page(env: Environment, error: TaskRunServiceError) -> web.Response:
    status = _STATUS.get(type(error), 400)
    page = env.get_template("error.html").render(
        error=error, status=status, states=[], signed_in=False, path="", csrf=""
    )
    return web.Response(text=page, content_type="text/html", status=status)


def _events(watch: WatchService) -> Handler:
    """Server-sent events: each change of the runs a page shows (`run=<id>`, or the runs
    page's filters), as JSON, pushed by WatchTaskRuns's machinery; a comment every 15 s keeps
    proxies from closing a quiet stream."""

    async def events(request: web.Request) -> web.StreamResponse:
        run = request.query.get("run")
        if run:
            try:
                changes = watch.watch_runs(
                    [uuid.UUID(run)], until_terminal=False, bulky=False, pace=PACE_SECONDS
                )
            except ValueError:
                raise web.HTTPBadRequest(text="run: not a task run id") from None
        else:
            changes = watch.watch_matching(
                parse_runs_view(request.query).query(), bulky=False, pace=PACE_SECONDS
            )
        response = web.StreamResponse(
            headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"}
        )
        _secure(response)
        await response.prepare(request)
        queue: asyncio.Queue[StoredTaskRun | None] = asyncio.Queue()
        feeding = asyncio.ensure_future(_feed(changes, queue))
        try:
            while True:
                try:
                    run_now = await asyncio.wait_for(queue.get(), KEEPALIVE_SECONDS)
                except TimeoutError:
                    await response.write(b": keepalive\n\n")
                    continue
                if run_now is None:  # the watch ended (shutdown, a deleted run)
                    break
                await response.write(_event(run_now))
        except (ConnectionResetError, asyncio.CancelledError):
            pass
        finally:
            feeding.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await feeding
        return response

    return events


async def _feed(
    changes: AsyncIterator[StoredTaskRun], queue: asyncio.Queue[StoredTaskRun | None]
) -> None:
    try:
        async for run in changes:
            queue.put_nowait(run)
    except (ShuttingDown, NotFound):
        pass
    finally:
        queue.put_nowait(None)


def _event(run: StoredTaskRun) -> bytes:
    data = {
        "id": str(run.id),
        "name": run.name,
        "state_id": str(run.state_id) if run.state_id else "",
        "state_type": run.state_type.value if run.state_type else "",
        "state_name": run.state_name or "",
    }
    return f"event: change\ndata: {json.dumps(data)}\n\n".encode()


class DashboardEndpoint:
    """The dashboard on its own port, beside the gRPC one, in the server's event loop."""

    def __init__(self, app: web.Application, host: str, port: int, tls: ssl.SSLContext | None):
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False)
        self._host, self._port, self._tls = host, port, tls
        self._site: web.TCPSite | None = None

    async def start(self) -> None:
        await self._runner.setup()
        self._site = web.TCPSite(self._runner, self._host, self._port, ssl_context=self._tls)
        try:
            await self._site.start()
        except OSError as error:
            raise RuntimeError(
                f"could not bind the dashboard port {self._host}:{self._port}: {error}"
            ) from error

    @property
    def port(self) -> int:
        assert self._site is not None and self._site._server is not None
        sockets = getattr(self._site._server, "sockets", None) or []
        return int(sockets[0].getsockname()[1]) if sockets else self._port

    @property
    def url(self) -> str:
        scheme = "https" if self._tls else "http"
        return f"{scheme}://{self._host}:{self.port}/"

    async def stop(self) -> None:
        await self._runner.cleanup()
