"""The web viewer of ``chatdebug serve``: its page and static files."""

from __future__ import annotations

from starlette.routing import BaseRoute

from ._state import ServerState
from ._static import static_routes

__all__ = ["viewer_routes"]


def viewer_routes(state: ServerState) -> list[BaseRoute]:
    """The routes of the web viewer (its page at ``/`` and its static files). The files
    need no token: they hold no data, and the page asks for a token to call the API."""
    del state  # the viewer reads everything through the API
    return static_routes()
