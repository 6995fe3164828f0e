"""HTTP capture: transports that record every attempt of a model call inside a run.

:class:`Transport` / :class:`AsyncTransport` wrap an httpx or httpx2 transport; the
ready-made clients use them; :func:`instrument_httpx` patches every client of the
process. Per round trip an attempt (``_attempt``) sees the request (``_request_view``),
tees the response body as the caller reads it (``_streams``, ``_response_body``,
``_decode``) and reports its outcome to its step; work that must not run on the caller's
thread goes to the reaper thread (``_reaper``), which :func:`drain` waits for.
"""

from ._clients import async_httpx2_client, async_httpx_client, httpx2_client, httpx_client
from ._patch import instrument_httpx, is_httpx_instrumented, uninstrument_httpx
from ._reaper import drain
from ._transport import AsyncTransport, Transport

__all__ = [
    "AsyncTransport",
    "Transport",
    "async_httpx2_client",
    "async_httpx_client",
    "drain",
    "httpx2_client",
    "httpx_client",
    "instrument_httpx",
    "is_httpx_instrumented",
    "uninstrument_httpx",
]
