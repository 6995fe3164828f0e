"""The Starlette application of ``chatdebug serve`` and what its routes share.

Routes, in the order they are matched:

* ``GET /metrics`` — the Prometheus text format, or OpenMetrics when the scraper's
  ``Accept`` header asks for it (content negotiation of prometheus_client itself);
* ``GET /healthz`` (the process answers) and ``GET /readyz`` (the store answers);
* the read API, settings API and deletion hooks (:mod:`.api`);
* the change events and the reads that apply them (:mod:`.events`), when the state
  has an event hub;
* the web viewer: its page at ``/`` and its files under ``/static/``.

``/metrics``, the health routes and the viewer's files need no token: they expose no
captured data (the viewer's page asks for a token and calls the API with it).

Every response, from any route or from the framework itself, carries the security
headers, and without tokens every route is served only under a loopback ``Host``
(:class:`~chatdebug.server._guard.Guard`). No redirect is ever built: a path with a
trailing slash is a 404, not a redirect to a URL made from the request's ``Host``.
"""

from __future__ import annotations

import asyncio
import logging
import re
import threading
from dataclasses import dataclass, field
from importlib import resources
from typing import Final

from prometheus_client import CollectorRegistry
from prometheus_client.exposition import choose_encoder
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import BaseRoute, Route
from starlette.types import ASGIApp

from .._diskspace import storage_problem
from .._exposition import exposed_registry
from ..metrics import Metrics
from ..store import Store, StoreError
from ._event_hub import EventHub
from ._guard import Guard
from ._responses import VIEWER_CSP, error_response, security_headers
from .api import ApiContext, api_routes
from .auth import Tokens
from .events import event_routes

__all__ = [
    "READY_TIMEOUT",
    "Readiness",
    "ServerState",
    "create_app",
    "viewer_files",
    "viewer_routes",
]

logger = logging.getLogger("chatdebug.server")

READY_TIMEOUT: Final = 3.0
"""Seconds ``/readyz`` waits for the store before answering 503."""

_TYPES: Final = {
    ".html": "text/html; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".svg": "image/svg+xml",
}
_NAME = re.compile(r"^[a-z0-9_]+\.(html|css|js|svg)$")


class Readiness:
    """Whether the store answered its last check, and why not when it did not.

    The purge and stale loops report here after every tick, and ``/readyz`` asks the store
    itself; a reason of ``None`` means ready. Thread-safe: loops run in threads.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._reason: str | None = None

    def mark_ready(self) -> None:
        """The store answered."""
        with self._lock:
            self._reason = None

    def mark_unready(self, reason: str) -> None:
        """The store did not answer; ``reason`` is one line for ``/readyz``."""
        with self._lock:
            self._reason = " ".join(reason.split()) or "store unreachable"

    @property
    def reason(self) -> str | None:
        """Why the store is not ready, or ``None`` when it is."""
        with self._lock:
            return self._reason


@dataclass
class ServerState:
    """Everything the routes of ``chatdebug serve`` need.

    Attributes:
        store: the store every route reads through.
        metrics: the metrics the loops update; ``/metrics`` exposes ``metrics.registry``.
        api_token: bearer token for reads (``None``: loopback clients only).
        admin_token: bearer token for writes (``None``: loopback clients only).
        forced_enabled: recording is forced on by the deployment (settings are read-only).
        readiness: the last known reachability of the store.
        storage: local files the application writes (the SQLite store, spill
            journals) whose file system ``/readyz`` checks, as ``(what, path)``.
        events: the change events the event streams send (none: no event routes).
        trace_url: a link to the user's tracing backend for a run's trace, with
            ``{trace_id}`` where its id goes (shown by the viewer), or ``None``.
    """

    store: Store
    metrics: Metrics
    api_token: str | None = None
    admin_token: str | None = None
    forced_enabled: bool = False
    readiness: Readiness = field(default_factory=Readiness)
    storage: tuple[tuple[str, str], ...] = ()
    events: EventHub | None = None
    trace_url: str | None = None

    @property
    def registry(self) -> CollectorRegistry:
        """The registry ``/metrics`` exposes."""
        return self.metrics.registry


class _Application(Starlette):
    """Starlette with :class:`Guard` outside everything, its own error handling too."""

    def __init__(self, routes: list[BaseRoute], tokens: Tokens) -> None:
        super().__init__(routes=routes)
        self.router.redirect_slashes = False  # a redirect would be built from Host
        self._tokens = tokens

    def build_middleware_stack(self) -> ASGIApp:
        return Guard(super().build_middleware_stack(), self._tokens)


def create_app(state: ServerState) -> Starlette:
    """The whole HTTP side of ``chatdebug serve`` over ``state``."""
    context = ApiContext(
        store=state.store,
        tokens=Tokens.of(state.api_token, state.admin_token),
        forced_by_deployment=state.forced_enabled,
        trace_url=state.trace_url,
    )
    routes: list[BaseRoute] = [
        *_metrics_routes(state),
        *_health_routes(state),
        # Before the API's: ``/api/debug/runs/changed`` is not a run id.
        *(event_routes(context, state.events) if state.events is not None else []),
        *api_routes(context),
        *viewer_routes(),
    ]
    return _Application(routes, context.tokens)


# -- /metrics --------------------------------------------------------------------------


def _metrics_routes(state: ServerState) -> list[BaseRoute]:
    """``/metrics`` over the state's registry (all workers' files in multiprocess mode)."""
    registry = exposed_registry(state.registry)

    async def metrics(request: Request) -> Response:
        encoder, content_type = choose_encoder(request.headers.get("accept", ""))
        body = await run_in_threadpool(encoder, registry)
        return Response(body, media_type=content_type)

    return [Route("/metrics", metrics, methods=["GET"])]


# -- /healthz and /readyz --------------------------------------------------------------
#
# /readyz asks the store a cheap question off the event loop, so a load balancer sees the
# database going away at its next probe, not at the next purge tick. A database that does
# not answer at all would hold a probe for the whole connection timeout: the answer is
# 503 after READY_TIMEOUT seconds instead, and concurrent probes share the one question
# in flight rather than piling up threads.


def _one_line(text: str, limit: int = 200) -> str:
    line = " ".join(text.split())
    return line if len(line) <= limit else line[: limit - 1] + "…"


def _check(state: ServerState) -> str | None:
    """``None`` when the store answered and its schema is current, else why not (one
    line, no password)."""
    try:
        pending = state.store.pending_migrations()
        if pending and pending[0] == 1:
            return "schema missing: run `chatdebug migrate`"
        if pending:
            versions = ", ".join(str(v) for v in pending)
            return f"schema behind: migrations {versions} not applied; run `chatdebug migrate`"
        state.store.get_allow_users()
    except StoreError as exc:
        # A file system that refuses writes says more than the error it caused.
        for what, path in state.storage:
            problem = storage_problem(path, what)
            if problem is not None:
                return _one_line(problem)
        return _one_line(f"store unreachable: {exc}")
    except Exception as exc:  # a driver error we did not classify: still not ready
        logger.warning("chatdebug serve: readiness check failed", exc_info=True)
        return _one_line(f"store check failed: {type(exc).__name__}")
    for what, path in state.storage:
        problem = storage_problem(path, what)
        if problem is not None:
            return _one_line(problem)
    return None


def _health_routes(state: ServerState) -> list[BaseRoute]:
    """``/healthz`` and ``/readyz``."""
    in_flight: asyncio.Future[str | None] | None = None

    async def healthz(request: Request) -> Response:
        return PlainTextResponse("ok\n")

    async def readyz(request: Request) -> Response:
        nonlocal in_flight
        if in_flight is None or in_flight.done():
            in_flight = asyncio.ensure_future(run_in_threadpool(_check, state))
        try:
            reason = await asyncio.wait_for(asyncio.shield(in_flight), READY_TIMEOUT)
        except TimeoutError:
            reason = f"store did not answer within {READY_TIMEOUT:g} s"
        if reason is not None:
            state.readiness.mark_unready(reason)
            return PlainTextResponse(reason + "\n", status_code=503)
        state.readiness.mark_ready()
        return PlainTextResponse("ready\n")

    return [
        Route("/healthz", healthz, methods=["GET", "HEAD"]),
        Route("/readyz", readyz, methods=["GET", "HEAD"]),
    ]


# -- the web viewer --------------------------------------------------------------------
#
# Its files (chatdebug/server/static/) are served from memory. The set of files is fixed
# when the routes are built: a request can only name one of them (no paths, no
# traversal). Every response carries the viewer's strict Content-Security-Policy.


def viewer_files() -> dict[str, tuple[bytes, str]]:
    """Every file of the viewer: name → (content, media type)."""
    folder = resources.files("chatdebug.server").joinpath("static")
    files: dict[str, tuple[bytes, str]] = {}
    for entry in folder.iterdir():
        if _NAME.match(entry.name):
            suffix = entry.name[entry.name.rindex(".") :]
            files[entry.name] = (entry.read_bytes(), _TYPES[suffix])
    if "index.html" not in files:  # a packaging mistake: fail loudly at startup
        raise RuntimeError("chatdebug: the viewer's files are missing from the package")
    return files


def viewer_routes() -> list[BaseRoute]:
    """``GET /`` (the page) and ``GET /static/<file>``."""
    files = viewer_files()
    headers = {**security_headers(VIEWER_CSP), "Cache-Control": "no-store"}

    def send(name: str) -> Response:
        content, media_type = files[name]
        return Response(content, media_type=media_type, headers=headers)

    async def index(request: Request) -> Response:
        return send("index.html")

    async def asset(request: Request) -> Response:
        name = str(request.path_params["name"])
        if name not in files:
            return error_response(404, "Not found.")
        return send(name)

    return [
        Route("/", index, methods=["GET", "HEAD"]),
        Route("/static/{name}", asset, methods=["GET", "HEAD"]),
    ]
