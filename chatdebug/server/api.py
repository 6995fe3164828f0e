"""The read API, settings API and deletion hooks of ``chatdebug serve``.

Routes (the token each needs in brackets; see :mod:`.auth` for the rules):

* ``GET /api/debug/runs`` [read] — recent runs of every chat, filtered (``chat_id``,
  ``q`` text search, …), with a cursor;
* ``GET /api/debug/runs/{run_id}`` [read] — one run with its steps, by id alone;
* ``GET /api/debug/chat?chat_id=`` [read] — a chat's totals (runs, tokens, cost);
* ``GET /api/debug/export?chat_id=`` [read] — the export document (as the chat route);
* ``GET /api/debug/viewer`` [read] — what the viewer needs to know of this server
  (``{"trace_url": template or null}``);
* ``GET /api/chats/{chat_id}/debug/runs`` [read] — a chat's runs, newest first;
* ``GET /api/chats/{chat_id}/debug/runs/{run_id}`` [read] — one run with its steps;
* ``GET /api/chats/{chat_id}/debug/export`` [read] — the export document;
* ``GET``/``PUT /api/chats/config/debug-logging`` [read/admin] — the admin switch;
* ``GET``/``PUT /api/chats/config/user-debug-logging/{user_id}`` [read/admin] — a user's
  opt-in;
* ``GET``/``PUT /api/chats/config/debug-retention-days`` [read/admin] — retention;
* ``DELETE /api/chats/{chat_id}/debug/runs[?after_message_id=N]`` [admin] — deletion.

Every route goes through one wrapper (:func:`endpoint`): the access check first, then
the handler, and every failure becomes a JSON error with the right status. Store calls
block, so they run in Starlette's thread pool (:meth:`ApiContext.call`).

Changing a setting answers 204 with no body, and refuses what the settings do not allow:

* ``PUT …/debug-logging {"allow_users": bool}`` → 204;
* ``PUT …/user-debug-logging/{user_id} {"debug_logging_enabled": bool}`` → 204, **409**
  when recording is forced on by the deployment (every run records: an opt-in would
  change nothing), **403** when the admin has not allowed users to opt in;
* ``PUT …/debug-retention-days {"debug_retention_days": int}`` → 204, **400** outside
  0..3650.

Deleting answers ``{"deleted_runs": N}``: every run of the chat, or with
``after_message_id`` only the runs that come after that message (a conversation rewound
to it); only runs started before ``started_before`` (default: now) go, so a run that
starts while the deletion is under way is kept.
"""

from __future__ import annotations

import functools
import json
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Final, TypeVar

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from .._documents import (
    chat_export,
    chat_summary_document,
    run_by_id,
    run_summary_document,
    run_with_steps,
)
from .._ids import MAX_ID_LENGTH, id_problem
from ..store import (
    DEFAULT_LIST_LIMIT,
    MAX_RETENTION_DAYS,
    RunFilter,
    RunPosition,
    Store,
    StoreUnavailable,
)
from ._query import (
    BadParameter,
    check_known,
    decode_cursor,
    encode_cursor,
    parse_limit,
    parse_message_id,
    parse_moment,
    parse_run_id,
    parse_search,
    parse_status,
    parse_text,
    strict_json,
)
from ._responses import error_response, json_response, no_content
from .auth import Access, AuthDenied, Tokens, authorize

__all__ = ["RECENT_RUNS_PARAMETERS", "ApiContext", "api_routes"]

logger = logging.getLogger("chatdebug.server")

RECENT_RUNS_PARAMETERS: Final = (
    "chat_id",
    "q",
    "status",
    "kind",
    "user_id",
    "model",
    "since",
    "until",
    "cursor",
    "limit",
)
ADMIN_SETTINGS: Final = "/api/chats/config/debug-logging"
USER_SETTINGS: Final = "/api/chats/config/user-debug-logging/{user_id}"
RETENTION: Final = "/api/chats/config/debug-retention-days"
CHAT_RUNS: Final = "/api/chats/{chat_id:path}/debug/runs"

_MAX_BODY: Final = 4096
T = TypeVar("T")
Handler = Callable[[Request], Awaitable[Response]]


@dataclass(frozen=True)
class ApiContext:
    """The store, the tokens and the deployment flag the routes use."""

    store: Store
    tokens: Tokens
    forced_by_deployment: bool = False
    trace_url: str | None = None
    clock: Callable[[], datetime] = field(default=lambda: datetime.now(UTC))

    async def call(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Run a blocking store call off the event loop."""
        return await run_in_threadpool(fn, *args, **kwargs)


def api_routes(context: ApiContext) -> list[BaseRoute]:
    """The routes of the read API, the settings API and the deletion hooks."""
    return [*_run_routes(context), *_settings_routes(context)]


# -- what every route shares -----------------------------------------------------------


def endpoint(context: ApiContext, needed: Access, failure: str) -> Callable[[Handler], Handler]:
    """Wrap a route: access check first, then the handler; ``BadParameter`` → 400, an
    unreachable database → 503, any other failure → 500 with ``failure`` as message
    (the details go to the log, never to the client)."""

    def wrap(handler: Handler) -> Handler:
        @functools.wraps(handler)
        async def run(request: Request) -> Response:
            try:
                authorize(request, context.tokens, needed)
            except AuthDenied as denied:
                extra = {"WWW-Authenticate": "Bearer"} if denied.status == 401 else None
                return error_response(denied.status, denied.message, extra)
            try:
                return await handler(request)
            except BadParameter as exc:
                return error_response(400, str(exc))
            except StoreUnavailable:
                logger.warning("chatdebug API: database unavailable", exc_info=True)
                return error_response(503, "Database unavailable, try again later.")
            except Exception:
                logger.exception("chatdebug API: %s %r failed", request.method, request.url.path)
                return error_response(500, failure)

        return run

    return wrap


def _query(request: Request, known: tuple[str, ...] = ()) -> dict[str, str]:
    """The query parameters, once each and all of them ``known``."""
    params = request.query_params
    check_known(params, params.multi_items(), known)
    return dict(params)


def chat_or_user_id(name: str, value: str) -> str:
    """A chat or user id: exactly the ids the recorder stores (see :mod:`chatdebug._ids`)."""
    problem = id_problem(value)
    if problem is not None:
        raise BadParameter(f"{name} {problem} (an id is 1 to {MAX_ID_LENGTH} characters, no NUL)")
    return value


def path_text(request: Request, name: str) -> str:
    """A path parameter (chat or user id), as :func:`chat_or_user_id` accepts it."""
    return chat_or_user_id(name, str(request.path_params[name]))


async def read_json_object(request: Request, field_name: str, kind: type) -> Any:
    """The one field of a small JSON object body, ``{"<field_name>": <kind>}``; anything
    else (too large, not JSON, other fields, wrong type) is a 400."""
    message = f"body must be a JSON object {{{json.dumps(field_name)}: {kind.__name__}}}"
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > _MAX_BODY:
            raise BadParameter("body too large")
    try:
        value = json.loads(body, object_pairs_hook=strict_json)
    except (ValueError, RecursionError):
        raise BadParameter(message) from None
    if not isinstance(value, dict) or set(value) != {field_name}:
        raise BadParameter(message)
    item = value[field_name]
    # bool is an int in Python; neither may stand in for the other here.
    if type(item) is not kind:
        raise BadParameter(message)
    return item


def _file_safe(text: str) -> str:
    return "".join(c if c.isascii() and (c.isalnum() or c in "-_.") else "_" for c in text)[:80]


# -- read routes -----------------------------------------------------------------------


def _run_routes(context: ApiContext) -> list[BaseRoute]:
    """The runs of a chat, one run with its steps, the chat export, and recent runs
    across every chat with filters and a cursor (read or admin token)."""

    @endpoint(context, Access.READ, "Internal error fetching debug runs.")
    async def chat_runs(request: Request) -> Response:
        chat_id = path_text(request, "chat_id")
        query = _query(request, ("limit",))
        limit = parse_limit(query.get("limit"))
        runs = await context.call(context.store.list_runs, chat_id, limit)
        return json_response([run_summary_document(run) for run in runs])

    @endpoint(context, Access.READ, "Internal error fetching debug run.")
    async def chat_run(request: Request) -> Response:
        chat_id = path_text(request, "chat_id")
        _query(request)
        run_id = parse_run_id(str(request.path_params["run_id"]))
        document = await context.call(run_with_steps, context.store, chat_id, run_id)
        if document is None:
            return error_response(404, "Debug run not found.")
        return json_response(document)

    @endpoint(context, Access.READ, "Internal error exporting debug runs.")
    async def chat_export_route(request: Request) -> Response:
        if "chat_id" in request.path_params:
            chat_id = path_text(request, "chat_id")
            _query(request)
        else:
            query = _query(request, ("chat_id",))
            chat_id = chat_or_user_id("chat_id", query.get("chat_id", ""))
        document = await context.call(chat_export, context.store, chat_id, context.clock())
        disposition = f'attachment; filename="chatdebug-export-{_file_safe(chat_id)}.json"'
        return json_response(document, headers={"Content-Disposition": disposition})

    @endpoint(context, Access.READ, "Internal error fetching debug runs.")
    async def recent_runs(request: Request) -> Response:
        query = _query(request, RECENT_RUNS_PARAMETERS)
        now = context.clock()
        chat_id, user_id = query.get("chat_id"), query.get("user_id")
        filters = RunFilter(
            chat_id=None if chat_id is None else chat_or_user_id("chat_id", chat_id),
            text=parse_search(query.get("q")),
            status=parse_status(query.get("status")),
            kind=parse_text("kind", query.get("kind")),
            user_id=None if user_id is None else chat_or_user_id("user_id", user_id),
            model=parse_text("model", query.get("model")),
            since=parse_moment("since", query.get("since"), now),
            until=parse_moment("until", query.get("until"), now),
        )
        after = decode_cursor(query.get("cursor"))
        limit = parse_limit(query.get("limit"), DEFAULT_LIST_LIMIT)
        # One more than asked tells whether another page exists.
        runs = await context.call(
            context.store.list_recent_runs, filters, after=after, limit=limit + 1
        )
        page = runs[:limit]
        body: dict[str, Any] = {"runs": [run_summary_document(run) for run in page]}
        body["next_cursor"] = (
            encode_cursor(RunPosition(page[-1].started_at, page[-1].id))
            if len(runs) > limit
            else None
        )
        return json_response(body)

    @endpoint(context, Access.READ, "Internal error fetching debug run.")
    async def run_route(request: Request) -> Response:
        _query(request)
        run_id = parse_run_id(str(request.path_params["run_id"]))
        document = await context.call(run_by_id, context.store, run_id)
        if document is None:
            return error_response(404, "Debug run not found.")
        return json_response(document)

    @endpoint(context, Access.READ, "Internal error fetching the chat's totals.")
    async def chat_summary(request: Request) -> Response:
        query = _query(request, ("chat_id",))
        if "chat_id" not in query:
            raise BadParameter("chat_id is required")
        chat_id = chat_or_user_id("chat_id", query["chat_id"])
        return json_response(await context.call(chat_summary_document, context.store, chat_id))

    @endpoint(context, Access.READ, "Internal error.")
    async def viewer_config(request: Request) -> Response:
        _query(request)
        return json_response({"trace_url": context.trace_url})

    return [
        Route("/api/debug/viewer", viewer_config, methods=["GET"]),
        Route("/api/debug/runs", recent_runs, methods=["GET"]),
        Route("/api/debug/runs/{run_id}", run_route, methods=["GET"]),
        Route("/api/debug/chat", chat_summary, methods=["GET"]),
        Route("/api/debug/export", chat_export_route, methods=["GET"]),
        Route(CHAT_RUNS, chat_runs, methods=["GET"]),
        Route("/api/chats/{chat_id:path}/debug/runs/{run_id}", chat_run, methods=["GET"]),
        Route("/api/chats/{chat_id:path}/debug/export", chat_export_route, methods=["GET"]),
    ]


# -- settings and deletion -------------------------------------------------------------


def _settings_routes(context: ApiContext) -> list[BaseRoute]:
    """Settings (GET: read token, PUT: admin token) and deletion (admin token)."""
    store = context.store
    forced = context.forced_by_deployment

    @endpoint(context, Access.READ, "Internal error fetching debug logging settings.")
    async def get_admin(request: Request) -> Response:
        _query(request)
        allow = await context.call(store.get_allow_users)
        return json_response({"allow_users": allow, "forced_by_deployment": forced})

    @endpoint(context, Access.ADMIN, "Internal error updating debug logging settings.")
    async def put_admin(request: Request) -> Response:
        _query(request)
        allow = await read_json_object(request, "allow_users", bool)
        await context.call(store.set_allow_users, allow)
        return no_content()

    @endpoint(context, Access.READ, "Internal error fetching user debug logging settings.")
    async def get_user(request: Request) -> Response:
        user_id = path_text(request, "user_id")
        _query(request)
        allow = await context.call(store.get_allow_users)
        enabled = await context.call(store.get_user_enabled, user_id)
        return json_response(
            {
                "debug_logging_enabled": enabled,
                "user_toggle_allowed": allow and not forced,
                "forced_by_deployment": forced,
            }
        )

    @endpoint(context, Access.ADMIN, "Internal error updating user debug logging settings.")
    async def put_user(request: Request) -> Response:
        user_id = path_text(request, "user_id")
        _query(request)
        enabled = await read_json_object(request, "debug_logging_enabled", bool)
        if forced:
            return error_response(409, "Debug logging is forced on by the deployment.")
        if not await context.call(store.get_allow_users):
            return error_response(
                403, "The administrator has not allowed users to enable debug logging."
            )
        await context.call(store.set_user_enabled, user_id, enabled)
        return no_content()

    @endpoint(context, Access.READ, "Internal error fetching debug retention.")
    async def get_retention(request: Request) -> Response:
        _query(request)
        days = await context.call(store.get_retention_days)
        return json_response({"debug_retention_days": days})

    @endpoint(context, Access.ADMIN, "Internal error updating debug retention.")
    async def put_retention(request: Request) -> Response:
        _query(request)
        days = await read_json_object(request, "debug_retention_days", int)
        if not 0 <= days <= MAX_RETENTION_DAYS:
            raise BadParameter(f"debug_retention_days must be between 0 and {MAX_RETENTION_DAYS}")
        await context.call(store.set_retention_days, days)
        return no_content()

    @endpoint(context, Access.ADMIN, "Internal error deleting debug runs.")
    async def delete_runs(request: Request) -> Response:
        chat_id = path_text(request, "chat_id")
        query = _query(request, ("after_message_id", "started_before"))
        now = context.clock()
        message_id = parse_message_id(query.get("after_message_id"))
        started_before = parse_moment("started_before", query.get("started_before"), now) or now
        if message_id is None:
            deleted = await context.call(store.delete_by_chat, chat_id, started_before)
        else:
            deleted = await context.call(
                store.delete_after_message, chat_id, message_id, started_before
            )
        return json_response({"deleted_runs": deleted})

    return [
        Route(ADMIN_SETTINGS, get_admin, methods=["GET"]),
        Route(ADMIN_SETTINGS, put_admin, methods=["PUT"]),
        Route(USER_SETTINGS, get_user, methods=["GET"]),
        Route(USER_SETTINGS, put_user, methods=["PUT"]),
        Route(RETENTION, get_retention, methods=["GET"]),
        Route(RETENTION, put_retention, methods=["PUT"]),
        Route(CHAT_RUNS, delete_runs, methods=["DELETE"]),
    ]
