"""Scraping the metrics of the application process: a small HTTP server, or an ASGI/WSGI
app to mount on the application's own server.

Every helper exposes the registry :func:`chatdebug.configure` records into by default
(:func:`application_metrics`). Under prometheus_client's multiprocess mode
(``PROMETHEUS_MULTIPROC_DIR`` set, e.g. gunicorn or uvicorn workers) they expose instead
what every worker process wrote into that directory, aggregated by a
:class:`~prometheus_client.multiprocess.MultiProcessCollector`: any worker answers for all.
"""

from __future__ import annotations

import os
import threading
from typing import Any

from prometheus_client import CollectorRegistry, make_asgi_app, make_wsgi_app, start_http_server
from prometheus_client.multiprocess import MultiProcessCollector

from .metrics import Metrics

__all__ = [
    "application_metrics",
    "exposed_registry",
    "metrics_asgi_app",
    "metrics_wsgi_app",
    "start_metrics_server",
]

MULTIPROC_DIR_VARIABLE = "PROMETHEUS_MULTIPROC_DIR"

_lock = threading.Lock()
_application_metrics: Metrics | None = None


def application_metrics() -> Metrics:
    """The process's :class:`~chatdebug.metrics.Metrics`, created on first use on a
    registry of its own; :func:`chatdebug.configure` records into it unless given
    ``metrics=``."""
    global _application_metrics
    with _lock:
        if _application_metrics is None:
            _application_metrics = Metrics(CollectorRegistry(auto_describe=True))
        return _application_metrics


def multiprocess_dir() -> str | None:
    """The multiprocess directory when prometheus_client's multiprocess mode is on."""
    return os.environ.get(MULTIPROC_DIR_VARIABLE) or os.environ.get(MULTIPROC_DIR_VARIABLE.lower())


def exposed_registry(registry: CollectorRegistry | None = None) -> CollectorRegistry:
    """What a scrape should read: ``registry`` (default: the application's), or, in
    multiprocess mode, a registry aggregating every process's files.

    In multiprocess mode the values of ``registry`` live in the directory's files, so
    reading the registry itself would show only empty metrics of this process.
    """
    path = multiprocess_dir()
    if path:
        aggregated = CollectorRegistry()
        MultiProcessCollector(aggregated, path=path)  # type: ignore[no-untyped-call]
        return aggregated
    return registry if registry is not None else application_metrics().registry


def start_metrics_server(
    port: int, addr: str = "127.0.0.1", *, registry: CollectorRegistry | None = None
) -> tuple[Any, threading.Thread]:
    """Serve ``/metrics`` of this process on ``addr:port`` from a daemon thread.

    Binds loopback by default; pass ``addr="0.0.0.0"`` to let a remote Prometheus in.
    Returns prometheus_client's ``(server, thread)``; ``server.shutdown()`` stops it.
    Raises ``OSError`` when the port is taken.
    """
    server, thread = start_http_server(port, addr=addr, registry=exposed_registry(registry))
    return server, thread


def metrics_asgi_app(registry: CollectorRegistry | None = None) -> Any:
    """An ASGI app answering scrapes, to mount on the application's own server, e.g.
    ``app.mount("/metrics", chatdebug.metrics_asgi_app())`` (Starlette/FastAPI)."""
    return make_asgi_app(registry=exposed_registry(registry))


def metrics_wsgi_app(registry: CollectorRegistry | None = None) -> Any:
    """A WSGI app answering scrapes, e.g. served under ``/metrics`` by a WSGI dispatcher
    (Flask: ``DispatcherMiddleware(app.wsgi_app, {"/metrics": metrics_wsgi_app()})``)."""
    return make_wsgi_app(registry=exposed_registry(registry))
