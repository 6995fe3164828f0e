"""Live routes of ``chatdebug serve``: change events as server-sent events, and the
small reads a client needs to apply one.

Routes (read token, as the read API):

* ``GET /api/debug/events[?status=&kind=&user_id=&model=&chat_id=]`` — the change events of
  every chat (``delete`` of any chat; ``finalize``, ``purge`` and ``reset`` always);
* ``GET /api/chats/{chat_id}/debug/events`` — those of one chat;
* ``GET /api/chats/{chat_id}/debug/runs/{run_id}/summary`` — one run without its steps;
* ``GET /api/chats/{chat_id}/debug/runs/{run_id}/steps/{step_number}`` — one step;
  both also as ``/api/debug/runs/{run_id}/…``, by run id alone;
* ``GET /api/debug/runs/changed?since=<RFC 3339>[&limit=N]`` — runs written at or
  after ``since``, oldest change first, and the ``next_since`` to ask with next.

An event stream (``text/event-stream``) sends each event as ``id:``, ``event:`` (its
kind: ``run_update``, ``delete``, ``finalize``, ``purge``, ``reset``) and ``data:`` (a
JSON object with ``chat_id``, ``run_id``, ``status`` and the changed ``step_numbers``
where they apply), a comment line after 15 s of quiet, and a ``retry:`` hint at the
start. A client that reconnects with ``Last-Event-ID`` gets what it missed, or a
``reset`` when that is no longer known (it then re-reads what it shows). The filters
compare with the run as it is at the event: a stream filtered on ``status`` does not
see a run leave that status.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any, Final

from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import BaseRoute, Route

from .._documents import rfc3339, run_summary_document, step_document
from ..store import DEFAULT_LIST_LIMIT, ChangeEvent
from ._event_hub import EventHub
from ._query import BadParameter, check_known, parse_limit, parse_moment, parse_run_id, parse_status
from ._query import parse_text as parse_filter_text
from ._responses import API_HEADERS, error_response, json_response
from .api import ApiContext, chat_or_user_id, endpoint, path_text
from .auth import Access

__all__ = ["EVENT_FILTERS", "event_routes"]

EVENT_FILTERS: Final = ("status", "kind", "user_id", "model")
# The cross-chat stream also takes the chat as a query parameter: a browser cannot send
# a chat id such as "." or ".." as a path segment (its URL parser removes it).
_ALL_EVENT_FILTERS: Final = (*EVENT_FILTERS, "chat_id")
RETRY_MS: Final = 1000
_STREAM_HEADERS: Final = {
    **API_HEADERS,
    "Cache-Control": "no-cache, no-store",
    "X-Accel-Buffering": "no",  # proxies must not hold events back
}


def _query(request: Request, known: tuple[str, ...]) -> dict[str, str]:
    params = request.query_params
    check_known(params, params.multi_items(), known)
    return dict(params)


def _matcher(chat_id: str | None, query: dict[str, str]) -> Any:
    status = parse_status(query.get("status"))
    kind = parse_filter_text("kind", query.get("kind"))
    user_id = parse_filter_text("user_id", query.get("user_id"))
    model = parse_filter_text("model", query.get("model"))

    def match(event: ChangeEvent) -> bool:
        if event.kind in ("finalize", "purge", "reset"):
            return True
        if chat_id is not None and event.chat_id != chat_id:
            return False
        if event.kind == "delete":
            return True
        return (
            (status is None or event.status == status)
            and (kind is None or event.run_kind == kind)
            and (user_id is None or event.user_id == user_id)
            and (model is None or event.model == model)
        )

    return match


def event_routes(context: ApiContext, hub: EventHub) -> list[BaseRoute]:
    """The event streams and the reads that apply an event."""

    def stream(request: Request, chat_id: str | None) -> Response:
        if chat_id is None:
            query = _query(request, _ALL_EVENT_FILTERS)
            if "chat_id" in query:
                chat_id = chat_or_user_id("chat_id", query["chat_id"])
        else:
            query = _query(request, EVENT_FILTERS)
        match = _matcher(chat_id, query)
        last_id = request.headers.get("last-event-id") or None
        if last_id is not None and (len(last_id) > 64 or not last_id.isprintable()):
            raise BadParameter("Last-Event-ID must be at most 64 printable characters")

        async def body() -> AsyncIterator[str]:
            yield f"retry: {RETRY_MS}\n\n"
            # One write per burst: with hundreds of subscribers, a write per event
            # would cost the event loop more than the events themselves.
            async for burst in hub.subscribe(match, last_id):
                yield ": keepalive\n\n" if burst is None else "".join(i.text for i in burst)

        return StreamingResponse(body(), media_type="text/event-stream", headers=_STREAM_HEADERS)

    @endpoint(context, Access.READ, "Internal error streaming debug events.")
    async def all_events(request: Request) -> Response:
        return stream(request, None)

    @endpoint(context, Access.READ, "Internal error streaming debug events.")
    async def chat_events(request: Request) -> Response:
        return stream(request, path_text(request, "chat_id"))

    def chat_of(request: Request) -> str | None:
        # The chat-path routes check the run is the chat's; the run-id ones need not.
        return path_text(request, "chat_id") if "chat_id" in request.path_params else None

    @endpoint(context, Access.READ, "Internal error fetching debug run.")
    async def run_summary(request: Request) -> Response:
        chat_id = chat_of(request)
        _query(request, ())
        run_id = parse_run_id(str(request.path_params["run_id"]))
        run = await context.call(context.store.get_run, run_id)
        if run is None or (chat_id is not None and run.chat_id != chat_id):
            return error_response(404, "Debug run not found.")
        return json_response(run_summary_document(run))

    @endpoint(context, Access.READ, "Internal error fetching debug step.")
    async def one_step(request: Request) -> Response:
        chat_id = chat_of(request)
        _query(request, ())
        run_id = parse_run_id(str(request.path_params["run_id"]))
        number = int(request.path_params["step_number"])
        step = await context.call(context.store.get_step, run_id, number)
        if step is None or (chat_id is not None and step.chat_id != chat_id):
            return error_response(404, "Debug step not found.")
        return json_response(step_document(step))

    @endpoint(context, Access.READ, "Internal error fetching debug runs.")
    async def changed_runs(request: Request) -> Response:
        query = _query(request, ("since", "limit"))
        since = parse_moment("since", query.get("since"), context.clock())
        if since is None:
            raise BadParameter("since is required")
        limit = parse_limit(query.get("limit"), DEFAULT_LIST_LIMIT)
        runs = await context.call(context.store.list_changed_runs, since, limit)
        next_since = rfc3339(runs[-1].updated_at) if runs else rfc3339(since)
        return json_response(
            {"runs": [run_summary_document(run) for run in runs], "next_since": next_since}
        )

    chat_run = "/api/chats/{chat_id:path}/debug/runs/{run_id}"
    return [
        Route("/api/debug/events", all_events, methods=["GET"]),
        Route("/api/debug/runs/changed", changed_runs, methods=["GET"]),
        Route("/api/chats/{chat_id:path}/debug/events", chat_events, methods=["GET"]),
        Route(f"{chat_run}/summary", run_summary, methods=["GET"]),
        Route(f"{chat_run}/steps/{{step_number:int}}", one_step, methods=["GET"]),
        Route("/api/debug/runs/{run_id}/summary", run_summary, methods=["GET"]),
        Route("/api/debug/runs/{run_id}/steps/{step_number:int}", one_step, methods=["GET"]),
    ]
