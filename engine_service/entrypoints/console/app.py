"""The console's web application (Starlette): each page and its JSON twin, the login form, and
the gate in front of them.

A thin entrypoint, like the gRPC servicer: a page calls one view builder of `views.py` (which
calls the `Engine` use cases), renders it, and its twin under `/api` returns the same data as
JSON for the page's script to poll. Read-only: nothing here changes the engine's state; the only
POSTs are logging in and out of the console itself.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, urlencode

import jinja2
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.base import BaseHTTPMiddleware, RequestResponseEndpoint
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.templating import Jinja2Templates
from starlette.types import ASGIApp

from engine_service.entrypoints.console.access import COOKIE, SESSION_SECONDS, ConsoleAccess
from engine_service.entrypoints.console.views import (
    Json,
    command_detail_view,
    commands_view,
    filter_choices,
    hosts_view,
    reconciliation_view,
)
from engine_service.service_layer.engine import Engine
from service_common import errors

log = logging.getLogger("engine_service.console")

PACKAGE = __package__ or "engine_service.entrypoints.console"
HOME = "/commands"
POLL_MILLISECONDS = 1000
MAX_FORM_BYTES = 4096
REFUSED = "send 'Authorization: Bearer <token>' (an API token), or log in at /login"
SECURITY_HEADERS = {
    # Everything comes from the console itself: no inline script or style, nothing from outside.
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; object-src 'none'; "
    "frame-ancestors 'none'; form-action 'self'; base-uri 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
}
STATUS_OF_ERROR: dict[type[errors.ServiceError], int] = {
    errors.InvalidArgument: 400,
    errors.NotFound: 404,
    errors.Unavailable: 503,
}


@dataclass(frozen=True)
class Page:
    """One console page: where it is, its template and title, and how a request builds its
    view. Its JSON twin is at `/api` + `path`."""

    path: str
    template: str
    title: str
    build: Callable[[Engine, Request], Json]


def _commands(engine: Engine, request: Request) -> Json:
    query = request.query_params
    return commands_view(
        engine, query.get("status", ""), query.get("type", ""), query.get("page", "")
    )


PAGES = (
    Page("/commands", "commands.html", "Commands", _commands),
    Page(
        "/commands/{command_id}",
        "command.html",
        "Command",
        lambda engine, request: command_detail_view(engine, request.path_params["command_id"]),
    ),
    Page("/hosts", "hosts.html", "Hosts", lambda engine, request: hosts_view(engine)),
    Page(
        "/reconciliation",
        "reconciliation.html",
        "Reconciliation",
        lambda engine, request: reconciliation_view(engine),
    ),
)


def is_api(request: Request) -> bool:
    return request.url.path.startswith("/api/")


def safe_next(target: str) -> str:
    """Where to go after logging in: a path of this console only (never another site)."""
    if target.startswith("/") and not target.startswith(("//", "/login")) and "\\" not in target:
        return target
    return HOME


class Gate(BaseHTTPMiddleware):
    """Every request but the login form and the static files needs a token (when tokens are
    configured): a page without one is sent to the login form, an API call gets 401. Every
    response carries the security headers; none but a static file may be cached."""

    def __init__(self, app: ASGIApp, access: ConsoleAccess) -> None:
        super().__init__(app)
        self.access = access

    async def dispatch(self, request: Request, call_next: RequestResponseEndpoint) -> Response:
        path = request.url.path
        static = path.startswith("/static/")
        if static or path == "/login":
            response = await call_next(request)
        elif (caller := self.access.identify(request.headers, request.cookies)) is None:
            response = self.refuse(request)
        else:
            request.state.caller = caller
            response = await call_next(request)
        response.headers.update(SECURITY_HEADERS)
        if not static:
            response.headers["Cache-Control"] = "no-store"
        return response

    @staticmethod
    def refuse(request: Request) -> Response:
        if is_api(request):
            return JSONResponse(
                {"error": REFUSED},
                status_code=401,
                headers={"WWW-Authenticate": 'Bearer realm="engine console"'},
            )
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        return RedirectResponse(f"/login?{urlencode({'next': target})}", status_code=303)


class Console:
    """The console over one engine: its pages, their JSON twins, and logging in and out."""

    def __init__(self, engine: Engine, access: ConsoleAccess, secure_cookie: bool) -> None:
        self.engine = engine
        self.access = access
        self.secure_cookie = secure_cookie  # served over HTTPS: the cookie says so
        env = jinja2.Environment(loader=jinja2.PackageLoader(PACKAGE, "templates"), autoescape=True)
        self.templates = Jinja2Templates(env=env)

    def app(self) -> Starlette:
        routes: list[Route | Mount] = [
            Route("/", lambda request: RedirectResponse(HOME, status_code=303)),
            Route("/login", self.login_form, methods=["GET"]),
            Route("/login", self.login, methods=["POST"]),
            Route("/logout", self.logout, methods=["POST"]),
            Mount("/static", StaticFiles(packages=[(PACKAGE, "static")]), name="static"),
        ]
        for page in PAGES:
            routes.append(Route(page.path, self.page(page)))
            routes.append(Route(f"/api{page.path}", self.twin(page)))
        return Starlette(
            routes=routes,
            middleware=[Middleware(Gate, access=self.access)],
            exception_handlers={errors.ServiceError: self.error},
        )

    def render(
        self, request: Request, template: str, status: int = 200, **context: Any
    ) -> Response:
        context.setdefault("caller", getattr(request.state, "caller", None))
        context.update(open=self.access.open, poll_ms=POLL_MILLISECONDS)
        return self.templates.TemplateResponse(request, template, context, status_code=status)

    def page(self, page: Page) -> Callable[[Request], Response]:
        def endpoint(request: Request) -> Response:  # sync: Starlette runs it on a thread
            data = page.build(self.engine, request)
            source = f"/api{request.url.path}"
            query = dict(request.query_params)
            return self.render(
                request,
                page.template,
                title=page.title,
                page=data,
                source=source,
                query=query,
                choices=filter_choices(),
            )

        return endpoint

    def twin(self, page: Page) -> Callable[[Request], Response]:
        def endpoint(request: Request) -> Response:
            return JSONResponse(page.build(self.engine, request))

        return endpoint

    def error(self, request: Request, exc: Exception) -> Response:
        status = next((code for cls, code in STATUS_OF_ERROR.items() if isinstance(exc, cls)), 500)
        if is_api(request):
            return JSONResponse({"error": str(exc)}, status_code=status)
        return self.render(request, "error.html", status, title="Error", message=str(exc))

    def login_form(self, request: Request) -> Response:
        target = safe_next(request.query_params.get("next", HOME))
        if self.access.open:
            return RedirectResponse(target, status_code=303)
        return self.render(request, "login.html", title="Log in", next=target, failed=False)

    async def login(self, request: Request) -> Response:
        body = await request.body()
        form = parse_qs(body[:MAX_FORM_BYTES].decode(errors="replace"))
        target = safe_next(form.get("next", [HOME])[0])
        peer = request.client.host if request.client else "unknown"
        session = self.access.login(form.get("token", [""])[0])
        if session is None:
            log.warning("console login refused (invalid token) from %s", peer)
            return self.render(request, "login.html", 401, title="Log in", next=target, failed=True)
        name, cookie = session
        log.info("console login by token %s from %s", name, peer)
        response = RedirectResponse(target, status_code=303)
        response.set_cookie(
            COOKIE,
            cookie,
            max_age=SESSION_SECONDS,
            path="/",
            secure=self.secure_cookie,
            httponly=True,
            samesite="strict",
        )
        return response

    async def logout(self, request: Request) -> Response:
        response = RedirectResponse("/login", status_code=303)
        response.delete_cookie(COOKIE, path="/", secure=self.secure_cookie, httponly=True)
        return response


def console_app(engine: Engine, access: ConsoleAccess, secure_cookie: bool = False) -> Starlette:
    """The console's ASGI application over `engine`."""
    return Console(engine, access, secure_cookie).app()
