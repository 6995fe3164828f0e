"""What every API route shares: the store and tokens it works with, and one wrapper that
checks access and turns every failure into a JSON error with the right status.

Store calls block, so they run in Starlette's thread pool (:meth:`ApiContext.call`).
"""

from __future__ import annotations

import functools
import json
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Final, TypeVar

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from ..store import Store, StoreUnavailable
from ._params import MAX_TEXT_PARAMETER, BadParameter
from ._responses import error_response
from .auth import Access, AuthDenied, Tokens, authorize

__all__ = ["ApiContext", "endpoint", "path_text", "read_json_object"]

logger = logging.getLogger("chatdebug.server")

_MAX_BODY: Final = 4096
T = TypeVar("T")
Handler = Callable[[Request], Awaitable[Response]]


@dataclass(frozen=True)
class ApiContext:
    """The store, the tokens and the deployment flag the routes use."""

    store: Store
    tokens: Tokens
    forced_by_deployment: bool = False
    clock: Callable[[], datetime] = field(default=lambda: datetime.now(UTC))

    async def call(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Run a blocking store call off the event loop."""
        return await run_in_threadpool(fn, *args, **kwargs)


def endpoint(
    context: ApiContext, needed: Access, failure: str
) -> Callable[[Callable[[Request], Awaitable[Response]]], Handler]:
    """Wrap a route: access check first, then the handler; ``BadParameter`` → 400, an
    unreachable database → 503, any other failure → 500 with ``failure`` as message
    (the details go to the log, never to the client)."""

    def wrap(handler: Callable[[Request], Awaitable[Response]]) -> Handler:
        @functools.wraps(handler)
        async def run(request: Request) -> Response:
            try:
                authorize(request, context.tokens, needed)
            except AuthDenied as denied:
                extra = {"WWW-Authenticate": "Bearer"} if denied.status == 401 else None
                return error_response(denied.status, denied.message, extra)
            try:
                return await handler(request)
            except BadParameter as exc:
                return error_response(400, str(exc))
            except StoreUnavailable:
                logger.warning("chatdebug API: database unavailable", exc_info=True)
                return error_response(503, "Database unavailable, try again later.")
            except Exception:
                logger.exception("chatdebug API: %s %r failed", request.method, request.url.path)
                return error_response(500, failure)

        return run

    return wrap


def path_text(request: Request, name: str) -> str:
    """A path parameter (chat or user id): 1..256 printable characters."""
    value = str(request.path_params[name])
    if not value or len(value) > MAX_TEXT_PARAMETER or not value.isprintable():
        raise BadParameter(f"{name} must be 1 to {MAX_TEXT_PARAMETER} printable characters")
    return value


async def read_json_object(request: Request, field_name: str, kind: type) -> Any:
    """The one field of a small JSON object body, ``{"<field_name>": <kind>}``; anything
    else (too large, not JSON, other fields, wrong type) is a 400."""
    message = f"body must be a JSON object {{{json.dumps(field_name)}: {kind.__name__}}}"
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > _MAX_BODY:
            raise BadParameter("body too large")
    try:
        value = json.loads(body)
    except (ValueError, RecursionError):
        raise BadParameter(message) from None
    if not isinstance(value, dict) or set(value) != {field_name}:
        raise BadParameter(message)
    item = value[field_name]
    # bool is an int in Python; neither may stand in for the other here.
    if type(item) is not kind:
        raise BadParameter(message)
    return item
