"""The web viewer of ``chatdebug serve``: its page and static files."""

from __future__ import annotations

from starlette.routing import BaseRoute

from ._state import ServerState

__all__ = ["viewer_routes"]


def viewer_routes(state: ServerState) -> list[BaseRoute]:
    """The routes of the web viewer (its page at ``/`` and its static files)."""
    return []
