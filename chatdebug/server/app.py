"""The Starlette application of ``chatdebug serve``: ``/metrics``, ``/healthz``,
``/readyz``, then the read API and the web viewer.

``/metrics`` and the health routes need no token: they expose no captured data.
"""

from __future__ import annotations

from starlette.applications import Starlette
from starlette.routing import BaseRoute

from ._state import ServerState
from .api import api_routes
from .health import health_routes
from .metrics_endpoint import metrics_routes
from .viewer import viewer_routes

__all__ = ["create_app"]


def create_app(state: ServerState) -> Starlette:
    """The whole HTTP side of ``chatdebug serve`` over ``state``."""
    routes: list[BaseRoute] = [
        *metrics_routes(state),
        *health_routes(state),
        *api_routes(state),
        *viewer_routes(state),
    ]
    return Starlette(routes=routes)
