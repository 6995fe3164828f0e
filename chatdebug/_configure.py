"""``chatdebug.configure()``, ``flush()`` and ``shutdown()``: wiring store, exporter and
tracing together. This is the only module that knows all three layers.

:func:`configure` works in two phases. First every argument (and every environment
variable it falls back to) is checked and resolved without touching anything: no file,
connection, thread, tracer provider or patched class (:mod:`chatdebug._options`). Only
then are the store opened,
the span processor built and added, and httpx patched; each of those steps registers how
to undo itself, so that a failure midway takes back what the call had done and leaves the
previous configuration in force.
"""

from __future__ import annotations

import logging
import os
import re
import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import timedelta

from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider

from ._exposition import application_metrics
from ._lifecycle import set_exit_flush_timeout
from ._options import (
    DEFAULT_ENABLEMENT_CACHE_SECONDS,
    DEFAULT_MAX_BODY_BYTES,
    DEFAULT_SPILL_HANDOFF,
    Plan,
    check_options,
)
from .exporter import Pricer, SpillJournal, StoreSpanProcessor
from .instrument import (
    InstrumentSettings,
    install,
    uninstrument_aiohttp,
    uninstrument_httpx,
)
from .instrument import instrument_http as _instrument_http
from .instrument import instrument_httpx as _instrument_httpx
from .instrument.capture import (
    drain,
    is_aiohttp_instrumented,
    is_httpx_instrumented,
)
from .metrics import Metrics
from .store import Store, open_store

__all__ = ["Configuration", "configure", "flush", "shutdown"]

logger = logging.getLogger("chatdebug")


@dataclass(frozen=True)
class Configuration:
    """What :func:`configure` set up; :func:`shutdown` takes it down again."""

    database_url: str
    """The URL the store was opened from (with ``store=``: the URL it was given as)."""
    store: Store
    """Where runs and steps are written; closed by :func:`shutdown`."""
    processor: StoreSpanProcessor
    """The span processor (and record sink) that queues writes to :attr:`store`."""
    tracer_provider: trace.TracerProvider
    """The provider runs and steps are created with."""
    metrics: Metrics
    """Where chatdebug's own metrics are recorded."""


_lock = threading.Lock()
_current: Configuration | None = None
_current_key: tuple[object, ...] | None = None


def configure(
    database_url: str | None = None,
    *,
    enabled: bool | None = None,
    tracer_provider: TracerProvider | None = None,
    store: Store | None = None,
    metrics: Metrics | None = None,
    queue_size: int | None = None,
    stale_threshold: float | timedelta | None = None,
    redact_keys: Iterable[str] | None = None,
    redact_headers: Iterable[str] | None = None,
    redact_patterns: str | re.Pattern[str] | Iterable[str | re.Pattern[str]] | None = None,
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
    enablement_cache_seconds: float = DEFAULT_ENABLEMENT_CACHE_SECONDS,
    instrument_httpx: bool = False,
    instrument_http: bool = False,
    exit_flush_timeout: float | None = None,
    model_urls: str | re.Pattern[str] | Iterable[str | re.Pattern[str]] | None = None,
    stream_usage: bool = False,
    prices: Mapping[str, Mapping[str, float]] | None = None,
    prices_file: str | os.PathLike[str] | None = None,
    spill_path: str | os.PathLike[str] | bool | None = None,
    spill_max_bytes: int | None = None,
    spill_handoff: float = DEFAULT_SPILL_HANDOFF,
) -> Configuration:
    """Set up the store, the exporter and tracing, and return what was set up.

    **Parameters** (all but ``database_url`` keyword-only):

    * **database_url** - ``sqlite:///path`` or ``postgresql://…``; default env
      ``CHATDEBUG_DATABASE_URL``, else ``sqlite:///chatdebug.db``.
    * **enabled** - ``True`` forces recording on for every run (the deployment flag; env
      ``CHATDEBUG_ENABLED=1``). Otherwise a run records when the store's ``allow_users``
      setting is on and its user opted in.
    * **tracer_provider** - the OpenTelemetry SDK ``TracerProvider`` to add our span
      processor to. Default: the global one if it is an SDK provider, else a private one.
    * **store** - an open :class:`~chatdebug.store.Store` to use instead of opening
      ``database_url`` (which is then only recorded in :attr:`Configuration.database_url`).
      The configuration owns it from then on: :func:`shutdown` closes it. When
      ``configure`` fails, it is left open.
    * **metrics** - a :class:`~chatdebug.metrics.Metrics` to record into, e.g.
      ``Metrics(prometheus_client.REGISTRY)``; default: the process's own registry.
    * **queue_size** - capacity of the exporter's write queue in events, at least 1;
      default env ``CHATDEBUG_QUEUE_SIZE``, else 10,000.
    * **stale_threshold** - seconds (or a ``timedelta``) without a heartbeat after which
      an in-progress run or step counts as abandoned, more than 0; open ones are
      heartbeated at half of it. Default env ``CHATDEBUG_STALE_THRESHOLD_SECONDS``, else
      300.
    * **redact_keys** / **redact_headers** - further JSON keys / header names whose values
      are always redacted (a string or an iterable of non-empty strings, matched
      case-insensitively).
    * **redact_patterns** - further value patterns (``str`` or compiled ``re.Pattern``,
      one or an iterable); every match becomes ``[REDACTED]``, or only the named group
      ``secret`` when the pattern has one.
    * **max_body_bytes** - cap, in bytes (at least 0), on the request and response
      bodies kept on each attempt; default 50,000.
    * **enablement_cache_seconds** - how long the store's ``allow_users`` and per-user
      answers are reused, at least 0; default 5.
    * **instrument_httpx** - ``True`` also calls :func:`chatdebug.instrument_httpx`: every
      httpx/httpx2 client of the process records, SDK default clients included. The
      patch is process-wide: it outlives :func:`shutdown` and reconfigurations, and
      ``False`` leaves it as it is (:func:`chatdebug.uninstrument_httpx` removes it).
    * **instrument_http** - ``True`` calls :func:`chatdebug.instrument_http`: as
      ``instrument_httpx``, and every aiohttp session too when aiohttp is installed
      (google-genai's async client). Process-wide in the same way
      (:func:`chatdebug.uninstrument_http` removes it).
    * **exit_flush_timeout** - seconds the exporter gets at interpreter exit, on
      :func:`shutdown` and at a reconfiguration to write what it still holds, at least 0;
      default env ``CHATDEBUG_EXIT_FLUSH_TIMEOUT``, else 10. What it could not write is
      counted with ``reason="shutdown"`` and logged once with the number of events.
    * **model_urls** - URLs that process-wide instrumentation records as model calls
      besides the routes it recognises: shell-style globs (``"https://llm.internal/*"``)
      matched against the whole URL without its query, or compiled patterns searched in
      it. Other requests through a patched client are passed through unrecorded.
    * **stream_usage** - ``True`` makes OpenAI Chat Completions streaming requests that do
      not ask for usage ask for it (``stream_options.include_usage``) before they are
      sent, so their steps have token counts; the recorded request is what was sent, and
      says the option was added. Default ``False``: requests are sent as the caller made
      them.
    * **prices** - price overrides in genai-prices' own shape, dollars per million
      tokens by model name: ``{"my-finetune": {"input_mtok": 1.5, "output_mtok": 6.0}}``
      (also ``cache_read_mtok``, ``cache_write_mtok``, ``output_reasoning_mtok``, …).
      They take precedence over the bundled genai-prices data for those models.
    * **prices_file** - a JSON file of overrides in the same shape, read now; entries of
      ``prices`` win over the file's.
    * **spill_path** - the spill journal: a local file where events that cannot be
      written in time wait (the store unavailable, the queue above half its capacity,
      or an event queued longer than ``spill_handoff``) until they are replayed into
      the store, in order; it survives the process, so a crash loses at most the last
      ``spill_handoff`` seconds. Default env ``CHATDEBUG_SPILL_PATH`` (``off``: none),
      else ``chatdebug-spill.db`` in the working directory for a PostgreSQL
      ``database_url`` and none for SQLite; ``True`` the same file for any store,
      ``False`` none. Processes sharing a path each use their own file beside it.
      With a journal, a database that cannot be reached yet is not an error: the
      store connects (and migrates) once it answers.
    * **spill_max_bytes** - bytes of events the journal holds at most, at least 1;
      default env ``CHATDEBUG_SPILL_MAX_BYTES``, else 1 GiB. Beyond it, events wait in
      the queue and are dropped (counted) when that is full too.
    * **spill_handoff** - seconds (more than 0) an event may wait in memory before it is
      handed to the journal; default 0.25.

    **Checks first.** Every argument, and every environment variable used in its
    place, is checked before anything happens: a wrong type raises :class:`TypeError`,
    a value out of range or a database URL that cannot be used raises
    :class:`ValueError` (:class:`~chatdebug.store.StoreConfigError` for the URL), each
    naming the option. An unknown keyword is Python's own :class:`TypeError`. After
    such an error nothing has changed: no file or connection was opened, no thread
    started, no tracer provider touched, nothing patched, and the previous
    configuration, if any, is still in force.

    **Then the setup.** The store is opened, the span processor built and added to the
    tracer provider, and httpx patched. If one of these fails (the database cannot be
    reached: :class:`~chatdebug.store.StoreUnavailable`; the tracer provider rejects the
    processor), what was already done is undone (the processor shut down, the store
    closed if this call opened it, the patch removed if this call applied it) and the
    original exception is raised, with a note saying so. The previous configuration, if
    any, is then still in force.

    **Idempotent.** Called again with the same arguments (objects such as ``store``,
    ``metrics`` and ``tracer_provider`` compared by identity, values by equality, after
    the environment fallbacks), it returns the configuration in force. With other
    arguments, the new configuration is built first; once it is complete it replaces
    the previous one, which is then flushed (within ``exit_flush_timeout``) and shut
    down. Its store is closed, unless the new configuration was given the same store
    object. A processor already added to a tracer provider cannot be removed from it;
    once shut down, it writes nothing more.
    """
    plan = check_options(
        database_url,
        enabled=enabled,
        tracer_provider=tracer_provider,
        store=store,
        metrics=metrics,
        queue_size=queue_size,
        stale_threshold=stale_threshold,
        redact_keys=redact_keys,
        redact_headers=redact_headers,
        redact_patterns=redact_patterns,
        max_body_bytes=max_body_bytes,
        enablement_cache_seconds=enablement_cache_seconds,
        instrument_httpx=instrument_httpx,
        instrument_http=instrument_http,
        exit_flush_timeout=exit_flush_timeout,
        model_urls=model_urls,
        stream_usage=stream_usage,
        prices=prices,
        prices_file=prices_file,
        spill_path=spill_path,
        spill_max_bytes=spill_max_bytes,
        spill_handoff=spill_handoff,
    )
    key = plan.key()
    with _lock:
        if _current is not None and _current_key == key:
            if plan.instrument_httpx:
                _instrument_httpx()  # idempotent, and nothing else to undo if it fails
            if plan.instrument_http:
                _instrument_http()  # idempotent too
            return _current
        return _build_and_install(plan, key)


# -- setup (side effects, each undone on failure) ---------------------------------------


def _build_and_install(plan: Plan, key: tuple[object, ...]) -> Configuration:
    """Build the new pipeline next to the one in force, then swap. Called with
    ``_lock`` held."""
    global _current, _current_key
    undo: list[tuple[str, Callable[[], object]]] = []
    try:
        store = plan.store
        if store is None:
            # Not an error, the store connects once it can and events wait meanwhile: a
            # PostgreSQL server that does not answer yet when there is a journal, an
            # SQLite file on a file system that refuses writes (read-only or full).
            sqlite = plan.url.strip().lower().startswith("sqlite:")
            store = open_store(plan.url, unreachable_ok=sqlite or plan.spill_path is not None)
            undo.append(("close the store", store.close))
        metrics = plan.metrics or application_metrics()
        spill = None
        if plan.spill_path is not None:
            spill = SpillJournal(plan.spill_path, plan.spill_max_bytes)
            undo.append(("close the spill journal", spill.close))
        processor = StoreSpanProcessor(
            store,
            metrics=metrics,
            max_queue_size=plan.queue_size,
            stale_threshold=plan.stale_threshold,
            pricer=Pricer(plan.prices),
            spill=spill,
            spill_handoff=plan.spill_handoff,
        )
        # Its writer thread starts with the first event, so shutting it down here is
        # quick; it also takes its queue capacity back out of the metrics.
        undo.append(("shut the span processor down", processor.shutdown))
        # Runs the configured provider does not sample still reach the store through
        # this one.
        fallback = TracerProvider()
        fallback.add_span_processor(processor)
        undo.append(("shut the fallback tracer provider down", fallback.shutdown))
        provider = plan.tracer_provider
        if provider is None:
            global_provider = trace.get_tracer_provider()
            if isinstance(global_provider, TracerProvider):
                provider = global_provider
        if provider is None:
            provider = fallback
        else:
            # Last of the steps that may fail before the swap: an SDK provider cannot
            # take a processor back, so nothing that could still fail comes after it.
            provider.add_span_processor(processor)
        if (plan.instrument_httpx or plan.instrument_http) and not is_httpx_instrumented():
            undo.append(("remove the httpx patch", uninstrument_httpx))
            _instrument_httpx()
        if plan.instrument_http and not is_aiohttp_instrumented():
            undo.append(("remove the aiohttp patch", uninstrument_aiohttp))
            _instrument_http()
    except BaseException as exc:
        _undo(undo, exc)
        raise

    # The swap. New runs go to the new pipeline from here on; runs still open keep the
    # sink they started with, so the previous processor gets their ends while it flushes.
    previous = _current
    set_exit_flush_timeout(plan.exit_flush_timeout)
    install(
        InstrumentSettings(
            tracer_provider=provider,
            fallback_provider=fallback,
            force_enabled=plan.enabled,
            enablement_source=store,
            enablement_cache_seconds=plan.enablement_cache_seconds,
            redactor=plan.redactor,
            max_body_bytes=plan.max_body_bytes,
            model_urls=plan.model_urls,
            stream_usage=plan.stream_usage,
            sink=processor,
        )
    )
    _current = Configuration(plan.url, store, processor, provider, metrics)
    _current_key = key
    if previous is not None:
        try:
            _close(previous, keep_store=previous.store is store)
        except Exception:
            # The new configuration is in force; a failure to close the old one must
            # not make this call look as if it had failed.
            logger.exception("chatdebug: closing the previous configuration failed")
    return _current


def _undo(undo: list[tuple[str, Callable[[], object]]], error: BaseException) -> None:
    for what, action in reversed(undo):
        try:
            action()
        except Exception as exc:
            logger.exception("chatdebug.configure(): could not %s after a failed setup", what)
            error.add_note(f"chatdebug.configure() could not {what} while undoing: {exc!r}")
    error.add_note(
        "chatdebug.configure() failed during setup and undid what it had done; "
        "the previous configuration, if any, is still in force"
    )


def current() -> Configuration | None:
    """The configuration in force, if any."""
    return _current


def flush(timeout: float = 10.0) -> bool:
    """Wait up to ``timeout`` seconds until everything recorded so far is written; True
    when all of it was written in time (also when nothing is configured)."""
    config = _current
    drained = drain(timeout)
    if config is None:
        return drained
    return config.processor.force_flush(int(timeout * 1000)) and drained


def _close(config: Configuration, *, keep_store: bool = False) -> None:
    drain(5.0)
    config.processor.shutdown()
    if not keep_store:
        config.store.close()


def _shutdown_locked() -> None:
    global _current, _current_key
    config = _current
    _current = None
    _current_key = None
    install(InstrumentSettings())
    if config is not None:
        _close(config)


def shutdown() -> None:
    """Flush (within the exit flush timeout), stop the background writer and close the
    store; recording stops until :func:`configure` is called again. Idempotent. A patch
    applied by ``instrument_httpx=True`` or ``instrument_http=True`` stays (see
    :func:`chatdebug.uninstrument_http`)."""
    with _lock:
        _shutdown_locked()
