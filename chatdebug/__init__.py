"""chatdebug: record every LLM call of a chat application as debug runs made of steps.

Quick start::

    import chatdebug, openai

    # ./chatdebug.db, or CHATDEBUG_DATABASE_URL; enabled=True records every run (local
    # development; in production only users who opted in are recorded without it)
    chatdebug.configure(enabled=True, instrument_httpx=True)
    client = openai.OpenAI()       # its default client records inside a run

    with chatdebug.run(chat_id="c-42", user_id="u-7", first_message=text):
        client.chat.completions.create(model="gpt-4o", messages=msgs)   # step 1
"""

from ._configure import Configuration, configure, flush, shutdown
from ._exposition import metrics_asgi_app, metrics_wsgi_app, start_metrics_server
from ._hooks import delete_after_message, delete_chat
from ._status import Operation, RunKind, Status
from ._version import __version__
from .instrument import (
    AsyncTransport,
    Redactor,
    RunHandle,
    StepHandle,
    Transport,
    async_httpx2_client,
    async_httpx_client,
    bind_context,
    httpx2_client,
    httpx_client,
    instrument_aiohttp,
    instrument_http,
    instrument_httpx,
    run,
    step,
    traced_run,
    uninstrument_aiohttp,
    uninstrument_http,
    uninstrument_httpx,
)

__all__ = [
    "AsyncTransport",
    "Configuration",
    "Operation",
    "Redactor",
    "RunHandle",
    "RunKind",
    "Status",
    "StepHandle",
    "Transport",
    "__version__",
    "async_httpx2_client",
    "async_httpx_client",
    "bind_context",
    "configure",
    "delete_after_message",
    "delete_chat",
    "flush",
    "httpx2_client",
    "httpx_client",
    "instrument_aiohttp",
    "instrument_http",
    "instrument_httpx",
    "metrics_asgi_app",
    "metrics_wsgi_app",
    "run",
    "shutdown",
    "start_metrics_server",
    "step",
    "traced_run",
    "uninstrument_aiohttp",
    "uninstrument_http",
    "uninstrument_httpx",
]
