"""HTTP capture: transports that record every attempt of a model call inside a run.

:class:`Transport` / :class:`AsyncTransport` wrap an httpx or httpx2 transport; the
ready-made clients use them; :func:`instrument_httpx` patches every client of the
process, :func:`instrument_aiohttp` every aiohttp session (``_aiohttp``, which tees its
responses' ``content``), :func:`instrument_http` both. Per round trip an attempt
(``_attempt``) sees the request (``_request_view``), tees the response body as the
caller reads it (``_streams``, ``_response_body``, ``_decode``) and reports its outcome
to its step; work that must not run on the caller's thread goes to the reaper thread
(``_reaper``), which :func:`drain` waits for. Through a client that a process-wide patch
instrumented only model API calls are recorded (``_model_calls``); with
``configure(stream_usage=True)`` a Chat Completions stream is asked for usage before it
is sent (``_stream_usage``).
"""

from ._aiohttp import instrument_aiohttp, is_aiohttp_instrumented, uninstrument_aiohttp
from ._clients import async_httpx2_client, async_httpx_client, httpx2_client, httpx_client
from ._http import instrument_http, uninstrument_http
from ._model_calls import compile_model_urls, is_model_call
from ._patch import instrument_httpx, is_httpx_instrumented, uninstrument_httpx
from ._reaper import drain
from ._transport import AsyncTransport, Transport

__all__ = [
    "AsyncTransport",
    "Transport",
    "async_httpx2_client",
    "async_httpx_client",
    "compile_model_urls",
    "drain",
    "httpx2_client",
    "httpx_client",
    "instrument_aiohttp",
    "instrument_http",
    "instrument_httpx",
    "is_aiohttp_instrumented",
    "is_httpx_instrumented",
    "is_model_call",
    "uninstrument_aiohttp",
    "uninstrument_http",
    "uninstrument_httpx",
]
