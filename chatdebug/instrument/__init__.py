"""Instrumentation: runs and steps as OpenTelemetry spans, and the httpx/httpx2
transports and the aiohttp patch that capture every HTTP attempt. No database code
lives here."""

from ._run import RunHandle, run, traced_run
from ._scope import bind_context
from ._settings import EnablementSource, InstrumentSettings, install, settings
from ._step import StepHandle, step
from .capture import (
    AsyncTransport,
    Transport,
    async_httpx2_client,
    async_httpx_client,
    httpx2_client,
    httpx_client,
    instrument_aiohttp,
    instrument_http,
    instrument_httpx,
    uninstrument_aiohttp,
    uninstrument_http,
    uninstrument_httpx,
)
from .redact import Redactor

__all__ = [
    "AsyncTransport",
    "EnablementSource",
    "InstrumentSettings",
    "Redactor",
    "RunHandle",
    "StepHandle",
    "Transport",
    "async_httpx2_client",
    "async_httpx_client",
    "bind_context",
    "httpx2_client",
    "httpx_client",
    "install",
    "instrument_aiohttp",
    "instrument_http",
    "instrument_httpx",
    "run",
    "settings",
    "step",
    "traced_run",
    "uninstrument_aiohttp",
    "uninstrument_http",
    "uninstrument_httpx",
]
