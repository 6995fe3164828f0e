"""``GET /healthz`` (the process answers) and ``GET /readyz`` (the store answers).

``/readyz`` asks the store a cheap question on every request, off the event loop, so a
load balancer sees the database going away at its next probe, not at the next purge tick.
"""

from __future__ import annotations

import logging

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import BaseRoute, Route

from ..store import StoreError
from ._state import ServerState

__all__ = ["health_routes"]

logger = logging.getLogger("chatdebug.server")


def _one_line(text: str, limit: int = 200) -> str:
    line = " ".join(text.split())
    return line if len(line) <= limit else line[: limit - 1] + "…"


def health_routes(state: ServerState) -> list[BaseRoute]:
    """``/healthz`` and ``/readyz``."""

    async def healthz(request: Request) -> Response:
        return PlainTextResponse("ok\n")

    async def readyz(request: Request) -> Response:
        try:
            await run_in_threadpool(state.store.get_allow_users)
        except StoreError as exc:
            reason = _one_line(f"store unreachable: {exc}")
            state.readiness.mark_unready(reason)
            return PlainTextResponse(reason + "\n", status_code=503)
        except Exception as exc:  # a driver error we did not classify: still not ready
            logger.warning("chatdebug serve: readiness check failed", exc_info=True)
            reason = _one_line(f"store check failed: {type(exc).__name__}")
            state.readiness.mark_unready(reason)
            return PlainTextResponse(reason + "\n", status_code=503)
        state.readiness.mark_ready()
        return PlainTextResponse("ready\n")

    return [
        Route("/healthz", healthz, methods=["GET", "HEAD"]),
        Route("/readyz", readyz, methods=["GET", "HEAD"]),
    ]
