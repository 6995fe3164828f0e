"""Read routes: the runs of a chat, one run with its steps, the chat export, and recent
runs across every chat with filters and a cursor."""

from __future__ import annotations

from typing import Any, Final

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from ..store import DEFAULT_LIST_LIMIT, RunFilter, RunPosition
from ._endpoint import ApiContext, endpoint, path_text
from ._params import (
    check_known,
    decode_cursor,
    encode_cursor,
    parse_limit,
    parse_moment,
    parse_run_id,
    parse_status,
    parse_text,
)
from ._reads import chat_export, run_with_steps
from ._responses import error_response, json_response
from ._shapes import run_summary_document
from .auth import Access

__all__ = ["RECENT_RUNS_PARAMETERS", "run_routes"]

RECENT_RUNS_PARAMETERS: Final = (
    "status",
    "kind",
    "user_id",
    "model",
    "since",
    "until",
    "cursor",
    "limit",
)


def _query(request: Request, known: tuple[str, ...]) -> dict[str, str]:
    params = request.query_params
    check_known(params, params.multi_items(), known)
    return dict(params)


def run_routes(context: ApiContext) -> list[BaseRoute]:
    """The read routes (read or admin token)."""

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
        _query(request, ())
        run_id = parse_run_id(str(request.path_params["run_id"]))
        document = await context.call(run_with_steps, context.store, chat_id, run_id)
        if document is None:
            return error_response(404, "Debug run not found.")
        return json_response(document)

    @endpoint(context, Access.READ, "Internal error exporting debug runs.")
    async def chat_export_route(request: Request) -> Response:
        chat_id = path_text(request, "chat_id")
        _query(request, ())
        document = await context.call(chat_export, context.store, chat_id, context.clock())
        disposition = f'attachment; filename="chatdebug-export-{_file_safe(chat_id)}.json"'
        return json_response(document, headers={"Content-Disposition": disposition})

    @endpoint(context, Access.READ, "Internal error fetching debug runs.")
    async def recent_runs(request: Request) -> Response:
        query = _query(request, RECENT_RUNS_PARAMETERS)
        now = context.clock()
        filters = RunFilter(
            status=parse_status(query.get("status")),
            kind=parse_text("kind", query.get("kind")),
            user_id=parse_text("user_id", query.get("user_id")),
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

    return [
        Route("/api/debug/runs", recent_runs, methods=["GET"]),
        Route("/api/chats/{chat_id:path}/debug/runs", chat_runs, methods=["GET"]),
        Route("/api/chats/{chat_id:path}/debug/runs/{run_id}", chat_run, methods=["GET"]),
        Route("/api/chats/{chat_id:path}/debug/export", chat_export_route, methods=["GET"]),
    ]


def _file_safe(text: str) -> str:
    return "".join(c if c.isascii() and (c.isalnum() or c in "-_.") else "_" for c in text)[:80]
