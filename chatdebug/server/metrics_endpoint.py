"""``GET /metrics``: the Prometheus text format, or OpenMetrics when the scraper's
``Accept`` header asks for it (content negotiation of prometheus_client itself)."""

from __future__ import annotations

from prometheus_client.exposition import choose_encoder
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from .._exposition import exposed_registry
from ._state import ServerState

__all__ = ["metrics_routes"]


def metrics_routes(state: ServerState) -> list[BaseRoute]:
    """``/metrics`` over the state's registry (all workers' files in multiprocess mode)."""
    registry = exposed_registry(state.registry)

    async def metrics(request: Request) -> Response:
        encoder, content_type = choose_encoder(request.headers.get("accept", ""))
        body = await run_in_threadpool(encoder, registry)
        return Response(body, media_type=content_type)

    return [Route("/metrics", metrics, methods=["GET"])]
