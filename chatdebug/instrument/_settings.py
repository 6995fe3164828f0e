"""Process-wide instrumentation settings and the enablement decision.

:func:`chatdebug.configure` fills these in; the instrumentation only reads them. The
enablement source is a small protocol (the store implements it) so that this package
never imports the store.
"""

from __future__ import annotations

import os
import re
import threading
import time
from dataclasses import dataclass, field
from typing import Protocol

from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider

from .._safety import log_internal_error
from .._spans import INSTRUMENTATION_NAME, RecordSink
from ..environment_variables import CHATDEBUG_ENABLED, truthy
from .redact import DEFAULT_REDACTOR, Redactor

__all__ = ["EnablementSource", "InstrumentSettings", "is_enabled", "settings", "tracer"]


class EnablementSource(Protocol):
    """Where the admin switch and the per-user opt-in are read from."""

    def get_allow_users(self) -> bool: ...

    def get_user_enabled(self, user_id: str) -> bool: ...


@dataclass
class InstrumentSettings:
    """What the instrumentation needs to know; replaced as a whole by ``configure``."""

    tracer_provider: trace.TracerProvider | None = None
    """Provider our spans go to; None → the global one."""
    fallback_provider: TracerProvider | None = None
    """Used when the user's provider does not record our run (sampled out), so that no
    run is lost."""
    force_enabled: bool | None = None
    """The deployment flag; None → read ``CHATDEBUG_ENABLED``."""
    enablement_source: EnablementSource | None = None
    enablement_cache_seconds: float = 5.0
    redactor: Redactor = field(default_factory=lambda: DEFAULT_REDACTOR)
    max_body_bytes: int = 50_000
    model_urls: tuple[re.Pattern[str], ...] = ()
    """URLs that process-wide instrumentation records as model calls besides the ones
    it recognises (``configure(model_urls=…)``)."""
    stream_usage: bool = False
    """Ask OpenAI Chat Completions streams for usage when the caller did not
    (``configure(stream_usage=True)``)."""
    sink: RecordSink | None = None
    """Where run and step records go (the exporter); with one, rows never depend on
    what the tracer provider keeps, and spans carry no JSON payloads."""


_settings = InstrumentSettings()
_cache: dict[tuple[str, str | None], tuple[float, bool]] = {}
_cache_lock = threading.Lock()


def settings() -> InstrumentSettings:
    """The settings in force."""
    return _settings


def install(new: InstrumentSettings) -> None:
    """Replace the settings (and forget cached enablement answers)."""
    global _settings
    _settings = new
    with _cache_lock:
        _cache.clear()


def tracer() -> trace.Tracer:
    """The tracer our runs and steps are created with."""
    provider = _settings.tracer_provider or trace.get_tracer_provider()
    return provider.get_tracer(INSTRUMENTATION_NAME)


def force_enabled() -> bool:
    """Whether the deployment flag forces recording on."""
    if _settings.force_enabled is not None:
        return _settings.force_enabled
    return truthy(os.environ.get(CHATDEBUG_ENABLED))


def is_enabled(user_id: str | None) -> bool:
    """Whether a run of ``user_id`` records: the deployment flag, else the admin switch
    and the user's opt-in, read from the store at most every few seconds."""
    if force_enabled():
        return True
    source = _settings.enablement_source
    if source is None or not user_id:
        return False
    return _cached(("allow_users", None), source.get_allow_users) and _cached(
        ("user", user_id), lambda: source.get_user_enabled(user_id)
    )


def _cached(key: tuple[str, str | None], read: _Reader) -> bool:
    now = time.monotonic()
    with _cache_lock:
        hit = _cache.get(key)
        if hit is not None and now - hit[0] < _settings.enablement_cache_seconds:
            return hit[1]
    try:
        value = bool(read())
    except Exception as exc:
        # A store that cannot answer means "not enabled": recording must never be what
        # breaks the caller.
        log_internal_error("enablement", exc)
        value = False
    with _cache_lock:
        if len(_cache) > 10_000:
            _cache.clear()
        _cache[key] = (now, value)
    return value


class _Reader(Protocol):
    def __call__(self) -> bool: ...
