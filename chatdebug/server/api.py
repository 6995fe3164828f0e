"""The read API, settings API and deletion hooks of ``chatdebug serve``.

Routes (the token each needs in brackets; see :mod:`.auth` for the rules):

* ``GET /api/debug/runs`` [read] — recent runs of every chat, filtered, with a cursor;
* ``GET /api/chats/{chat_id}/debug/runs`` [read] — a chat's runs, newest first;
* ``GET /api/chats/{chat_id}/debug/runs/{run_id}`` [read] — one run with its steps;
* ``GET /api/chats/{chat_id}/debug/export`` [read] — the export document;
* ``GET``/``PUT /api/chats/config/debug-logging`` [read/admin] — the admin switch;
* ``GET``/``PUT /api/chats/config/user-debug-logging/{user_id}`` [read/admin] — a user's
  opt-in;
* ``GET``/``PUT /api/chats/config/debug-retention-days`` [read/admin] — retention;
* ``DELETE /api/chats/{chat_id}/debug/runs[?after_message_id=N]`` [admin] — deletion.
"""

from __future__ import annotations

from starlette.routing import BaseRoute

from ._endpoint import ApiContext
from ._state import ServerState
from .api_runs import run_routes
from .api_settings import settings_routes
from .auth import Tokens

__all__ = ["api_routes"]


def api_routes(state: ServerState) -> list[BaseRoute]:
    """The routes of the read API, the settings API and the deletion hooks."""
    context = ApiContext(
        store=state.store,
        tokens=Tokens.of(state.api_token, state.admin_token),
        forced_by_deployment=state.forced_enabled,
    )
    return [*run_routes(context), *settings_routes(context)]
