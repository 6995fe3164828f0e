"""Instrumentation: runs and steps as OpenTelemetry spans, and the httpx/httpx2
transports that capture every HTTP attempt. No database code lives here."""

from ._clients import async_httpx2_client, async_httpx_client, httpx2_client, httpx_client
from ._decorate import bind_context
from ._patch import instrument_httpx, uninstrument_httpx
from ._redact import Redactor
from ._run import RunHandle, run, traced_run
from ._state import EnablementSource, InstrumentSettings, install, settings
from ._step import StepHandle, step
from ._transport import AsyncTransport, Transport

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
    "instrument_httpx",
    "run",
    "settings",
    "step",
    "traced_run",
    "uninstrument_httpx",
]
