"""What every response of ``chatdebug serve`` gets, whichever route (or none) answers.

:class:`Guard` wraps the whole ASGI application, outside Starlette's own error
handling, so that its rules hold for every route, those added later included, and for
the framework's own answers (404, 405, a 500 from an unhandled error):

* the security headers (:data:`~chatdebug.server._responses.API_HEADERS`: a
  Content-Security-Policy, ``nosniff``, ``no-referrer``, frame denial, ``no-store``) are
  added to every response that does not set its own value of a header;
* without tokens (loopback-only mode) a request whose ``Host`` is not a loopback name is
  refused with 403 before any route sees it, which defeats DNS rebinding everywhere.

:func:`secure_h11_protocol` gives uvicorn's HTTP/1.1 protocol the same headers on the
400 it writes itself for a request it cannot parse (that request never reaches the
application).
"""

from __future__ import annotations

import json
from typing import Any

from starlette.datastructures import Headers, MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ._responses import API_HEADERS
from .auth import Tokens, host_is_loopback

__all__ = ["Guard", "secure_h11_protocol"]

_LOOPBACK_ONLY = "Forbidden: without tokens only loopback host names are served."


class Guard:
    """ASGI middleware: security headers on every response, Host check without tokens."""

    def __init__(self, app: ASGIApp, tokens: Tokens) -> None:
        self.app = app
        self.tokens = tokens

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if self.tokens.open and not host_is_loopback(Headers(scope=scope).get("host", "")):
            await _refuse(send)
            return

        async def send_secured(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for name, value in API_HEADERS.items():
                    if name not in headers:
                        headers[name] = value
            await send(message)

        await self.app(scope, receive, send_secured)


async def _refuse(send: Send) -> None:
    body = json.dumps({"message": _LOOPBACK_ONLY}).encode()
    headers = [(k.lower().encode(), v.encode()) for k, v in API_HEADERS.items()]
    headers.append((b"content-type", b"application/json"))
    headers.append((b"content-length", str(len(body)).encode()))
    await send({"type": "http.response.start", "status": 403, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def secure_h11_protocol() -> Any:
    """uvicorn's h11 protocol class whose own 400 (a request it cannot parse) carries the
    security headers."""
    import h11
    from uvicorn.protocols.http.h11_impl import H11Protocol

    extra = [(k.lower().encode(), v.encode()) for k, v in API_HEADERS.items()]

    class SecureH11Protocol(H11Protocol):
        def send_400_response(self, msg: str) -> None:
            # As uvicorn writes it, with the headers every other response has.
            headers = [
                (b"content-type", b"text/plain; charset=utf-8"),
                (b"connection", b"close"),
                *extra,
            ]
            event = h11.Response(status_code=400, headers=headers, reason=b"Bad Request")
            self.transport.write(self.conn.send(event))
            self.transport.write(self.conn.send(event=h11.Data(data=msg.encode("ascii"))))
            self.transport.write(self.conn.send(event=h11.EndOfMessage()))
            self.transport.close()

    return SecureH11Protocol
