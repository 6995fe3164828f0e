"""``chatdebug.instrument_http()``: process-wide instrumentation of every HTTP client
library chatdebug supports that is installed — httpx and httpx2 (dependencies, always)
and aiohttp (optional, when it can be found)."""

from __future__ import annotations

import importlib.util

from ._aiohttp import instrument_aiohttp, uninstrument_aiohttp
from ._patch import instrument_httpx, uninstrument_httpx

__all__ = ["instrument_http", "uninstrument_http"]


def _has_aiohttp() -> bool:
    return importlib.util.find_spec("aiohttp") is not None


def instrument_http() -> None:
    """Record through every client of every supported HTTP library of the process:
    :func:`chatdebug.instrument_httpx` and, when aiohttp is installed,
    :func:`chatdebug.instrument_aiohttp`. Inside a ``chatdebug.run()`` the model calls
    they make are recorded; other requests and everything outside a run pass through.
    Idempotent (or pass ``instrument_http=True`` to :func:`chatdebug.configure`)."""
    if _has_aiohttp():
        instrument_aiohttp()  # first: the one that can fail (a broken aiohttp install)
    instrument_httpx()


def uninstrument_http() -> None:
    """Undo :func:`instrument_http` (and :func:`chatdebug.instrument_httpx` /
    :func:`chatdebug.instrument_aiohttp` applied on their own). Idempotent."""
    uninstrument_aiohttp()
    uninstrument_httpx()
