"""Ready-made httpx / httpx2 clients whose transport records (``chatdebug.httpx_client()``…).

Keyword arguments go to the client; the ones that configure the connection (``verify``,
``cert``, ``trust_env``, ``http1``, ``http2``, ``limits``, ``proxy``, ``retries``…) also
build the inner transport, because a client ignores them once it is given a transport.
A ``transport=`` argument is wrapped instead. Timeouts default to the official SDKs'
(600 s, 5 s to connect) and redirects are followed, as the SDKs' own clients do.
"""

from __future__ import annotations

from typing import Any

import httpx
import httpx2

from ._transport import AsyncTransport, Transport

__all__ = ["async_httpx2_client", "async_httpx_client", "httpx2_client", "httpx_client"]

_TRANSPORT_KEYS = (
    "verify",
    "cert",
    "trust_env",
    "http1",
    "http2",
    "limits",
    "proxy",
    "retries",
    "local_address",
    "uds",
    "socket_options",
)


def _client_kwargs(lib: Any, kwargs: dict[str, Any], is_async: bool) -> dict[str, Any]:
    options = dict(kwargs)
    inner = options.pop("transport", None)
    if inner is None:
        transport_options = {k: options[k] for k in _TRANSPORT_KEYS if k in options}
        for key in ("proxy", "retries", "local_address", "uds", "socket_options"):
            options.pop(key, None)
        factory = lib.AsyncHTTPTransport if is_async else lib.HTTPTransport
        inner = factory(**transport_options)
    options["transport"] = AsyncTransport(inner) if is_async else Transport(inner)
    options.setdefault("timeout", lib.Timeout(600.0, connect=5.0))
    options.setdefault("follow_redirects", True)
    return options


def httpx_client(**kwargs: Any) -> httpx.Client:
    """An ``httpx.Client`` that records (e.g. ``openai.OpenAI(http_client=...)``)."""
    return httpx.Client(**_client_kwargs(httpx, kwargs, is_async=False))


def async_httpx_client(**kwargs: Any) -> httpx.AsyncClient:
    """An ``httpx.AsyncClient`` that records."""
    return httpx.AsyncClient(**_client_kwargs(httpx, kwargs, is_async=True))


def httpx2_client(**kwargs: Any) -> httpx2.Client:
    """An ``httpx2.Client`` that records — what the current openai and anthropic SDKs
    use (``anthropic.Anthropic(http_client=chatdebug.httpx2_client())``)."""
    return httpx2.Client(**_client_kwargs(httpx2, kwargs, is_async=False))


def async_httpx2_client(**kwargs: Any) -> httpx2.AsyncClient:
    """An ``httpx2.AsyncClient`` that records."""
    return httpx2.AsyncClient(**_client_kwargs(httpx2, kwargs, is_async=True))
