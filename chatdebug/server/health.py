"""``GET /healthz`` (the process answers) and ``GET /readyz`` (the store answers).

``/readyz`` asks the store a cheap question off the event loop, so a load balancer sees
the database going away at its next probe, not at the next purge tick. A database that
does not answer at all would hold a probe for the whole connection timeout: the answer
is 503 after :data:`READY_TIMEOUT` seconds instead, and concurrent probes share the one
question in flight rather than piling up threads.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Final

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import BaseRoute, Route

from ..store import StoreError
from ._state import ServerState

__all__ = ["READY_TIMEOUT", "health_routes"]

logger = logging.getLogger("chatdebug.server")

READY_TIMEOUT: Final = 3.0


def _one_line(text: str, limit: int = 200) -> str:
    line = " ".join(text.split())
    return line if len(line) <= limit else line[: limit - 1] + "…"


def _check(state: ServerState) -> str | None:
    """``None`` when the store answered, else why not (one line, no password)."""
    try:
        state.store.get_allow_users()
    except StoreError as exc:
        return _one_line(f"store unreachable: {exc}")
    except Exception as exc:  # a driver error we did not classify: still not ready
        logger.warning("chatdebug serve: readiness check failed", exc_info=True)
        return _one_line(f"store check failed: {type(exc).__name__}")
    return None


def health_routes(state: ServerState) -> list[BaseRoute]:
    """``/healthz`` and ``/readyz``."""
    in_flight: asyncio.Future[str | None] | None = None

    async def healthz(request: Request) -> Response:
        return PlainTextResponse("ok\n")

    async def readyz(request: Request) -> Response:
        nonlocal in_flight
        if in_flight is None or in_flight.done():
            in_flight = asyncio.ensure_future(run_in_threadpool(_check, state))
        try:
            reason = await asyncio.wait_for(asyncio.shield(in_flight), READY_TIMEOUT)
        except TimeoutError:
            reason = f"store did not answer within {READY_TIMEOUT:g} s"
        if reason is not None:
            state.readiness.mark_unready(reason)
            return PlainTextResponse(reason + "\n", status_code=503)
        state.readiness.mark_ready()
        return PlainTextResponse("ready\n")

    return [
        Route("/healthz", healthz, methods=["GET", "HEAD"]),
        Route("/readyz", readyz, methods=["GET", "HEAD"]),
    ]
