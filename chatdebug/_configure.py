"""``chatdebug.configure()``, ``flush()`` and ``shutdown()``: wiring store, exporter and
tracing together. This is the only module that knows all three layers."""

from __future__ import annotations

import logging
import os
import threading
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider

from ._exposition import application_metrics
from .environment_variables import (
    CHATDEBUG_DATABASE_URL,
    CHATDEBUG_EXIT_FLUSH_TIMEOUT,
    CHATDEBUG_QUEUE_SIZE,
    CHATDEBUG_STALE_THRESHOLD_SECONDS,
    DEFAULT_DATABASE_URL,
)
from .exporter import StoreSpanProcessor
from .exporter._lifecycle import DEFAULT_EXIT_FLUSH_SECONDS, set_exit_flush_timeout
from .instrument import InstrumentSettings, Redactor, install, instrument_httpx
from .instrument._reaper import drain
from .metrics import Metrics
from .store import Store, open_store

__all__ = ["Configuration", "configure", "flush", "shutdown"]

logger = logging.getLogger("chatdebug")

_KNOWN_OPTIONS = frozenset(
    {
        "store",
        "metrics",
        "queue_size",
        "stale_threshold",
        "redact_keys",
        "redact_headers",
        "redact_patterns",
        "max_body_bytes",
        "enablement_cache_seconds",
        "instrument_httpx",
        "exit_flush_timeout",
    }
)


@dataclass(frozen=True)
class Configuration:
    """What :func:`configure` set up."""

    database_url: str
    store: Store
    processor: StoreSpanProcessor
    tracer_provider: trace.TracerProvider
    metrics: Metrics


_lock = threading.Lock()
_current: Configuration | None = None
_current_key: tuple[Any, ...] | None = None


def _env_float(name: str, default: float) -> float:
    raw = os.environ.get(name)
    if not raw:
        return default
    try:
        return float(raw)
    except ValueError:
        logger.warning("ignoring %s=%r: not a number, using %s", name, raw, default)
        return default


def configure(
    database_url: str | None = None,
    *,
    enabled: bool | None = None,
    tracer_provider: trace.TracerProvider | None = None,
    **options: Any,
) -> Configuration:
    """Set up the store, the exporter and tracing. Idempotent: calling it again with the
    same arguments returns the existing configuration; with other arguments the previous
    one is flushed and shut down first.

    **Parameters:**

    * **database_url** - ``sqlite:///path`` or ``postgresql://…``; default env
      ``CHATDEBUG_DATABASE_URL``, else ``sqlite:///chatdebug.db``.
    * **enabled** - ``True`` forces recording on for every run (the deployment flag; env
      ``CHATDEBUG_ENABLED=1``). Otherwise a run records when the store's ``allow_users``
      setting is on and its user opted in.
    * **tracer_provider** - the OpenTelemetry ``TracerProvider`` to add our span
      processor to. Default: the global one if it is an SDK provider, else a private one.

    Options: ``store`` (an open :class:`~chatdebug.store.Store` to use instead of a URL),
    ``metrics`` (a :class:`~chatdebug.metrics.Metrics`, e.g. on the global Prometheus
    registry), ``queue_size`` (exporter queue, default 10,000, env
    ``CHATDEBUG_QUEUE_SIZE``), ``stale_threshold`` (seconds or timedelta, default 300),
    ``redact_keys`` / ``redact_headers`` / ``redact_patterns`` (extra redaction rules),
    ``max_body_bytes`` (attempt body cap, default 50,000), ``enablement_cache_seconds``,
    ``instrument_httpx`` (``True`` also calls :func:`chatdebug.instrument_httpx`: every
    httpx/httpx2 client of the process records, SDK default clients included),
    ``exit_flush_timeout`` (seconds the exporter gets at interpreter exit, on
    :func:`shutdown` and at a reconfiguration to write what it still holds, default 10,
    env ``CHATDEBUG_EXIT_FLUSH_TIMEOUT``; what it could not write is counted with
    ``reason="shutdown"`` and logged once with the number of events).
    """
    global _current, _current_key
    unknown = set(options) - _KNOWN_OPTIONS
    if unknown:
        raise TypeError(f"unknown configure() options: {', '.join(sorted(unknown))}")
    exit_flush = options.get("exit_flush_timeout")
    if exit_flush is None:
        exit_flush = _env_float(CHATDEBUG_EXIT_FLUSH_TIMEOUT, DEFAULT_EXIT_FLUSH_SECONDS)
    set_exit_flush_timeout(exit_flush)  # a bad value raises before anything changes
    if options.get("instrument_httpx"):
        instrument_httpx()
    url = database_url or os.environ.get(CHATDEBUG_DATABASE_URL) or DEFAULT_DATABASE_URL
    key = (url, enabled, id(tracer_provider), tuple(sorted((k, id(v)) for k, v in options.items())))
    with _lock:
        if _current is not None and _current_key == key:
            return _current
        if _current is not None:
            _shutdown_locked()
        redactor = Redactor(
            extra_keys=options.get("redact_keys") or (),
            extra_header_names=options.get("redact_headers") or (),
            extra_patterns=options.get("redact_patterns") or (),
        )
        store: Store = options.get("store") or open_store(url)
        metrics: Metrics = options.get("metrics") or application_metrics()
        stale = options.get("stale_threshold")
        if stale is None:
            stale = _env_float(CHATDEBUG_STALE_THRESHOLD_SECONDS, 300.0)
        stale_delta = stale if isinstance(stale, timedelta) else timedelta(seconds=float(stale))
        queue_size = int(options.get("queue_size") or _env_float(CHATDEBUG_QUEUE_SIZE, 10_000))
        processor = StoreSpanProcessor(
            store, metrics=metrics, max_queue_size=queue_size, stale_threshold=stale_delta
        )
        provider = tracer_provider
        if provider is None:
            global_provider = trace.get_tracer_provider()
            provider = global_provider if isinstance(global_provider, TracerProvider) else None
        fallback = TracerProvider()
        fallback.add_span_processor(processor)
        if provider is None:
            provider = fallback
        elif isinstance(provider, TracerProvider):
            provider.add_span_processor(processor)
        else:
            raise TypeError("tracer_provider must be an opentelemetry.sdk.trace.TracerProvider")
        install(
            InstrumentSettings(
                tracer_provider=provider,
                fallback_provider=fallback,
                force_enabled=enabled,
                enablement_source=store,
                enablement_cache_seconds=float(options.get("enablement_cache_seconds", 5.0)),
                redactor=redactor,
                max_body_bytes=int(options.get("max_body_bytes", 50_000)),
                sink=processor,
            )
        )
        _current = Configuration(url, store, processor, provider, metrics)
        _current_key = key
        return _current


def current() -> Configuration | None:
    """The configuration in force, if any."""
    return _current


def flush(timeout: float = 10.0) -> bool:
    """Write out everything recorded so far; True when all of it was written in time."""
    config = _current
    drained = drain(timeout)
    if config is None:
        return drained
    return config.processor.force_flush(int(timeout * 1000)) and drained


def _shutdown_locked() -> None:
    global _current, _current_key
    config = _current
    _current = None
    _current_key = None
    install(InstrumentSettings())
    if config is None:
        return
    drain(5.0)
    config.processor.shutdown()
    config.store.close()


def shutdown() -> None:
    """Flush, stop the background writer and close the store. Idempotent."""
    with _lock:
        _shutdown_locked()
