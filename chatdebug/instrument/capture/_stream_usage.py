"""``configure(stream_usage=True)``: OpenAI Chat Completions streams asked for usage.

A Chat Completions stream reports token counts only when the request sets
``stream_options.include_usage``; many client libraries do not, so their steps would have
no tokens. With the option on, a recorded streaming request to a Chat Completions route
that does not ask for usage gets ``"stream_options": {"include_usage": true}`` before it
is sent: the provider then adds one last chunk with ``usage`` and no choices, which the
SDKs and frameworks that ask for it themselves already handle. The request is re-encoded
only when its body is a JSON object that can be written back exactly; anything else is
sent as it was. What is recorded is what was sent, and the normalized request names the
option that was added (:data:`ADDED_KEY`).
"""

from __future__ import annotations

from typing import Any, Final

import httpx
import httpx2
import orjson

from ._request_view import request_content

__all__ = ["ADDED_KEY", "INCLUDE_USAGE", "add_stream_usage"]

ADDED_KEY: Final = "added_by_chatdebug"
"""Key of the normalized request listing what chatdebug added to the request sent."""
INCLUDE_USAGE: Final = "stream_options.include_usage"


def add_stream_usage(request: Any) -> bool:
    """Ask a Chat Completions streaming ``request`` (httpx or httpx2) for usage, in place.
    True when the body was changed."""
    if str(request.method).upper() != "POST":
        return False
    if not str(request.url.path).rstrip("/").lower().endswith("/chat/completions"):
        return False
    content = request_content(request)
    if not content or b'"stream"' not in content:
        return False
    try:
        body = orjson.loads(content)
    except orjson.JSONDecodeError:
        return False
    if not isinstance(body, dict) or body.get("stream") is not True:
        return False
    options = body.get("stream_options")
    if options is None:
        options = {}
    elif not isinstance(options, dict) or "include_usage" in options:
        return False  # the caller decided (or sent something we do not understand)
    body["stream_options"] = {**options, "include_usage": True}
    try:
        new = orjson.dumps(body)
    except TypeError:  # an integer beyond 64 bits: leave the request as it was
        return False
    stream_type = httpx.ByteStream if isinstance(request, httpx.Request) else httpx2.ByteStream
    request.stream = stream_type(new)
    request._content = new
    request.headers["Content-Length"] = str(len(new))
    return True
