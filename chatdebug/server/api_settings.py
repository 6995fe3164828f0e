"""Settings routes (reference §8.2) and the deletion hooks (§5.8).

Reading a setting needs the read token; changing one, or deleting, the admin token.
Semantics and status codes are the reference's:

* ``PUT …/debug-logging {"allow_users": bool}`` → 204;
* ``PUT …/user-debug-logging/{user_id} {"debug_logging_enabled": bool}`` → 204, **409**
  when recording is forced on by the deployment, **403** when the admin has not allowed
  users to opt in;
* ``PUT …/debug-retention-days {"debug_retention_days": int}`` → 204, **400** outside
  0..3650.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from ..store import MAX_RETENTION_DAYS
from ._endpoint import ApiContext, endpoint, path_text, read_json_object
from ._params import BadParameter, check_known, parse_message_id, parse_moment
from ._responses import error_response, json_response, no_content
from .auth import Access

__all__ = ["settings_routes"]

ADMIN_SETTINGS = "/api/chats/config/debug-logging"
USER_SETTINGS = "/api/chats/config/user-debug-logging/{user_id}"
RETENTION = "/api/chats/config/debug-retention-days"
CHAT_RUNS = "/api/chats/{chat_id:path}/debug/runs"


def _no_query(request: Request, known: tuple[str, ...] = ()) -> dict[str, str]:
    params = request.query_params
    check_known(params, params.multi_items(), known)
    return dict(params)


def settings_routes(context: ApiContext) -> list[BaseRoute]:
    """Settings (GET: read token, PUT: admin token) and deletion (admin token)."""
    store = context.store
    forced = context.forced_by_deployment

    @endpoint(context, Access.READ, "Internal error fetching debug logging settings.")
    async def get_admin(request: Request) -> Response:
        _no_query(request)
        allow = await context.call(store.get_allow_users)
        return json_response({"allow_users": allow, "forced_by_deployment": forced})

    @endpoint(context, Access.ADMIN, "Internal error updating debug logging settings.")
    async def put_admin(request: Request) -> Response:
        _no_query(request)
        allow = await read_json_object(request, "allow_users", bool)
        await context.call(store.set_allow_users, allow)
        return no_content()

    @endpoint(context, Access.READ, "Internal error fetching user debug logging settings.")
    async def get_user(request: Request) -> Response:
        user_id = path_text(request, "user_id")
        _no_query(request)
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
        _no_query(request)
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
        _no_query(request)
        days = await context.call(store.get_retention_days)
        return json_response({"debug_retention_days": days})

    @endpoint(context, Access.ADMIN, "Internal error updating debug retention.")
    async def put_retention(request: Request) -> Response:
        _no_query(request)
        days = await read_json_object(request, "debug_retention_days", int)
        if not 0 <= days <= MAX_RETENTION_DAYS:
            raise BadParameter(f"debug_retention_days must be between 0 and {MAX_RETENTION_DAYS}")
        await context.call(store.set_retention_days, days)
        return no_content()

    @endpoint(context, Access.ADMIN, "Internal error deleting debug runs.")
    async def delete_runs(request: Request) -> Response:
        chat_id = path_text(request, "chat_id")
        query = _no_query(request, ("after_message_id", "started_before"))
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
