"""The read API, settings API and deletion hooks of ``chatdebug serve``."""

from __future__ import annotations

from starlette.routing import BaseRoute

from ._state import ServerState

__all__ = ["api_routes"]


def api_routes(state: ServerState) -> list[BaseRoute]:
    """The routes of the read API, the settings API and the deletion hooks."""
    return []
