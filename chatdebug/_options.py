"""The arguments of :func:`chatdebug.configure`, checked and resolved into a :class:`Plan`
without touching anything: no file, connection, thread, tracer provider or patched class.

Every option is checked for its type and range, and every environment variable used in
its place too; each error names the option (``TypeError`` for a wrong type,
``ValueError`` for a value out of range or an unusable URL or price entry). The plan
also says when two calls ask for the same configuration (:meth:`Plan.key`).
"""

from __future__ import annotations

import json
import logging
import math
import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Final, TypeGuard, cast

from opentelemetry.sdk.trace import TracerProvider

from ._lifecycle import DEFAULT_EXIT_FLUSH_SECONDS
from .environment_variables import (
    CHATDEBUG_DATABASE_URL,
    CHATDEBUG_EXIT_FLUSH_TIMEOUT,
    CHATDEBUG_QUEUE_SIZE,
    CHATDEBUG_SPILL_MAX_BYTES,
    CHATDEBUG_SPILL_PATH,
    CHATDEBUG_STALE_THRESHOLD_SECONDS,
    DEFAULT_DATABASE_URL,
    DEFAULT_SPILL_PATH,
)
from .exporter import PricesError, load_prices_file, validate_prices
from .instrument import (
    Redactor,
)
from .instrument.capture import (
    compile_model_urls,
)
from .metrics import Metrics
from .store import Store, database_location

__all__ = [
    "DEFAULT_ENABLEMENT_CACHE_SECONDS",
    "DEFAULT_MAX_BODY_BYTES",
    "DEFAULT_SPILL_HANDOFF",
    "Plan",
    "check_options",
]

logger = logging.getLogger("chatdebug")

DEFAULT_QUEUE_SIZE: Final = 10_000
DEFAULT_STALE_THRESHOLD_SECONDS: Final = 300.0
DEFAULT_MAX_BODY_BYTES: Final = 50_000
DEFAULT_ENABLEMENT_CACHE_SECONDS: Final = 5.0
DEFAULT_SPILL_MAX_BYTES: Final = 1 << 30
DEFAULT_SPILL_HANDOFF: Final = 0.25
_OFF: Final = ("off", "0", "false", "no", "none")

# What the exporter and the enablement check call on a store given as ``store=``. The
# Store protocol is not checkable at run time, and a wrapper that forwards through
# ``__getattr__`` (a fault injector, a proxy) must still be accepted.
_STORE_METHODS: Final = ("close", "batch", "create_run", "get_allow_users", "get_user_enabled")


@dataclass(frozen=True)
class Plan:
    """Every argument of :func:`configure`, checked and resolved; building it has no
    side effect."""

    url: str
    enabled: bool | None
    tracer_provider: TracerProvider | None
    store: Store | None
    metrics: Metrics | None
    queue_size: int
    stale_threshold: timedelta
    redact_keys: tuple[str, ...]
    redact_headers: tuple[str, ...]
    redact_patterns: tuple[str | re.Pattern[str], ...]
    redactor: Redactor
    max_body_bytes: int
    enablement_cache_seconds: float
    instrument_httpx: bool
    instrument_http: bool
    exit_flush_timeout: float
    model_urls: tuple[re.Pattern[str], ...]
    stream_usage: bool
    prices: dict[str, Any]
    spill_path: str | None
    """Absolute path of the spill journal, ``None`` for none."""
    spill_max_bytes: int
    spill_handoff: float

    def key(self) -> tuple[object, ...]:
        """What makes two calls "the same configuration". Objects the caller hands over
        count by identity (they are kept alive by the configuration, so an id is not
        reused while it is compared); values by equality. ``instrument_httpx`` and
        ``instrument_http`` are not
        part of it: patching is process-wide and never rebuilds the pipeline."""
        return (
            self.url,
            self.enabled,
            id(self.tracer_provider),
            id(self.store),
            id(self.metrics),
            self.queue_size,
            self.stale_threshold,
            self.redact_keys,
            self.redact_headers,
            self.redact_patterns,
            self.max_body_bytes,
            self.enablement_cache_seconds,
            self.exit_flush_timeout,
            tuple((p.pattern, p.flags) for p in self.model_urls),
            self.stream_usage,
            json.dumps(self.prices, sort_keys=True),
            self.spill_path,
            self.spill_max_bytes,
            self.spill_handoff,
        )


def check_options(
    database_url: object,
    *,
    enabled: object,
    tracer_provider: object,
    store: object,
    metrics: object,
    queue_size: object,
    stale_threshold: object,
    redact_keys: object,
    redact_headers: object,
    redact_patterns: object,
    max_body_bytes: object,
    enablement_cache_seconds: object,
    instrument_httpx: object,
    instrument_http: object,
    exit_flush_timeout: object,
    model_urls: object,
    stream_usage: object,
    prices: object = None,
    prices_file: object = None,
    spill_path: object = None,
    spill_max_bytes: object = None,
    spill_handoff: object = DEFAULT_SPILL_HANDOFF,
) -> Plan:
    # Parameters are typed ``object`` here: the public signature states what is
    # accepted, and this is where callers without a type checker find out.
    if database_url is not None and not isinstance(database_url, str):
        raise _type_error("database_url", "a str or None", database_url)
    if enabled is not None and not isinstance(enabled, bool):
        raise _type_error("enabled", "True, False or None", enabled)
    if tracer_provider is not None and not isinstance(tracer_provider, TracerProvider):
        raise _type_error(
            "tracer_provider", "an opentelemetry.sdk.trace.TracerProvider or None", tracer_provider
        )
    if store is not None:
        missing = [name for name in _STORE_METHODS if not callable(getattr(store, name, None))]
        if missing:
            raise TypeError(
                f"chatdebug.configure(): store must be a chatdebug Store (from "
                f"chatdebug.store.open_store), got {type(store).__name__} without "
                f"{', '.join(missing)}"
            )
    if metrics is not None and not isinstance(metrics, Metrics):
        raise _type_error("metrics", "a chatdebug.metrics.Metrics or None", metrics)
    if not isinstance(instrument_httpx, bool):
        raise _type_error("instrument_httpx", "True or False", instrument_httpx)
    if not isinstance(instrument_http, bool):
        raise _type_error("instrument_http", "True or False", instrument_http)
    if not isinstance(stream_usage, bool):
        raise _type_error("stream_usage", "True or False", stream_usage)

    url = database_url or os.environ.get(CHATDEBUG_DATABASE_URL) or DEFAULT_DATABASE_URL
    if store is None:
        # Parses the URL without opening anything; StoreConfigError (a ValueError) says
        # what is wrong with it.
        database_location(url)

    keys = _names("redact_keys", redact_keys)
    headers = _names("redact_headers", redact_headers)
    patterns = _patterns(redact_patterns)
    try:
        redactor = Redactor(extra_keys=keys, extra_header_names=headers, extra_patterns=patterns)
    except ValueError as exc:  # only the patterns can still be rejected here
        raise ValueError(f"chatdebug.configure(): redact_patterns: {exc}") from exc

    return Plan(
        url=url,
        enabled=enabled,
        tracer_provider=tracer_provider,
        store=cast(Store | None, store),  # checked above, by its methods
        metrics=metrics,
        queue_size=_queue_size(queue_size),
        stale_threshold=_stale_threshold(stale_threshold),
        redact_keys=keys,
        redact_headers=headers,
        redact_patterns=patterns,
        redactor=redactor,
        max_body_bytes=_count("max_body_bytes", max_body_bytes, minimum=0),
        enablement_cache_seconds=_seconds("enablement_cache_seconds", enablement_cache_seconds),
        instrument_httpx=instrument_httpx,
        instrument_http=instrument_http,
        exit_flush_timeout=_exit_flush_timeout(exit_flush_timeout),
        model_urls=_model_urls(model_urls),
        stream_usage=stream_usage,
        prices=_prices(prices, prices_file),
        spill_path=_spill_path(spill_path, url, has_store=store is not None),
        spill_max_bytes=_spill_max_bytes(spill_max_bytes),
        spill_handoff=_seconds("spill_handoff", spill_handoff, positive=True),
    )


def _spill_path(value: object, url: str, *, has_store: bool) -> str | None:
    """The journal's absolute path: the option, else ``CHATDEBUG_SPILL_PATH``, else the
    default for a PostgreSQL URL; ``None`` for no journal."""
    if value is False:
        return None
    if value is None or value is True:
        from_env = os.environ.get(CHATDEBUG_SPILL_PATH, "").strip()
        if from_env.lower() in _OFF:
            return None
        if from_env:
            value = from_env
        elif value is True or (not has_store and url.startswith(("postgresql:", "postgres:"))):
            value = DEFAULT_SPILL_PATH
        else:
            return None
    if not isinstance(value, str | os.PathLike):
        raise _type_error("spill_path", "a path, True, False or None", value)
    path = os.fspath(value)
    if not isinstance(path, str) or not path:
        raise ValueError("chatdebug.configure(): spill_path must not be empty")
    if os.path.isdir(path):
        raise ValueError(f"chatdebug.configure(): spill_path {path!r} is a directory, not a file")
    return os.path.abspath(os.path.expanduser(path))


def _spill_max_bytes(value: object) -> int:
    if value is not None:
        return _count("spill_max_bytes", value, minimum=1)
    from_env = _env_float(CHATDEBUG_SPILL_MAX_BYTES, DEFAULT_SPILL_MAX_BYTES)
    if not math.isfinite(from_env) or int(from_env) < 1:
        raise ValueError(
            f"chatdebug.configure(): spill_max_bytes from {CHATDEBUG_SPILL_MAX_BYTES} must be "
            f"at least 1, got {os.environ.get(CHATDEBUG_SPILL_MAX_BYTES)!r}"
        )
    return int(from_env)


def _prices(prices: object, prices_file: object) -> dict[str, Any]:
    """The overrides of ``prices_file`` then ``prices``, checked (``ValueError`` naming
    the bad entry)."""
    merged: dict[str, Any] = {}
    if prices_file is not None:
        if not isinstance(prices_file, str | os.PathLike):
            raise _type_error("prices_file", "a path or None", prices_file)
        try:
            merged.update(load_prices_file(prices_file))
        except PricesError as exc:
            raise ValueError(f"chatdebug.configure(): {exc}") from exc
    if prices is not None:
        try:
            validate_prices(prices, where="prices")
        except PricesError as exc:
            raise ValueError(f"chatdebug.configure(): {exc}") from exc
        merged.update(cast(Mapping[str, Any], prices))
    return merged


def _model_urls(value: object) -> tuple[re.Pattern[str], ...]:
    if value is None:
        return ()
    if not isinstance(value, str | re.Pattern | Iterable):
        raise _type_error("model_urls", "a str, a re.Pattern or an iterable of them", value)
    try:
        return compile_model_urls(cast(Iterable[str | re.Pattern[str]], value))
    except (ValueError, re.error) as exc:
        raise ValueError(f"chatdebug.configure(): model_urls: {exc}") from exc


def _type_error(option: str, expected: str, value: object) -> TypeError:
    return TypeError(
        f"chatdebug.configure(): {option} must be {expected}, got {type(value).__name__} "
        f"{value!r:.80}"
    )


def _is_number(value: object) -> TypeGuard[int | float]:
    # bool is an int, but ``queue_size=True`` is a mistake, not the number 1.
    return isinstance(value, int | float) and not isinstance(value, bool)


def _count(option: str, value: object, *, minimum: int) -> int:
    if not isinstance(value, int) or isinstance(value, bool):
        raise _type_error(option, "an int", value)
    if value < minimum:
        raise ValueError(f"chatdebug.configure(): {option} must be at least {minimum}, got {value}")
    return value


def _seconds(option: str, value: object, *, positive: bool = False) -> float:
    if not _is_number(value):
        raise _type_error(option, "a number of seconds", value)
    seconds = float(value)
    if not math.isfinite(seconds) or seconds < 0 or (positive and seconds == 0):
        bound = "more than 0" if positive else "at least 0"
        raise ValueError(
            f"chatdebug.configure(): {option} must be a finite number of seconds, {bound}, "
            f"got {value!r}"
        )
    return seconds


def _env_float(name: str, default: float) -> float:
    # A value that is not a number is ignored with a warning, as before: an environment
    # variable set for another version or by mistake should not stop the application.
    raw = os.environ.get(name)
    if not raw:
        return default
    try:
        return float(raw)
    except ValueError:
        logger.warning("ignoring %s=%r: not a number, using %s", name, raw, default)
        return default


def _queue_size(value: object) -> int:
    if value is not None:
        return _count("queue_size", value, minimum=1)
    from_env = _env_float(CHATDEBUG_QUEUE_SIZE, DEFAULT_QUEUE_SIZE)
    if not math.isfinite(from_env) or int(from_env) < 1:
        raise ValueError(
            f"chatdebug.configure(): queue_size from {CHATDEBUG_QUEUE_SIZE} must be at "
            f"least 1, got {os.environ.get(CHATDEBUG_QUEUE_SIZE)!r}"
        )
    return int(from_env)


def _stale_threshold(value: object) -> timedelta:
    option = "stale_threshold"
    if value is None:
        value = _env_float(CHATDEBUG_STALE_THRESHOLD_SECONDS, DEFAULT_STALE_THRESHOLD_SECONDS)
        option = f"stale_threshold from {CHATDEBUG_STALE_THRESHOLD_SECONDS}"
    if isinstance(value, timedelta):
        if value <= timedelta(0):
            raise ValueError(f"chatdebug.configure(): {option} must be more than 0, got {value}")
        return value
    seconds = _seconds(option, value, positive=True)
    try:
        return timedelta(seconds=seconds)
    except OverflowError:
        raise ValueError(f"chatdebug.configure(): {option} is too large, got {value!r}") from None


def _exit_flush_timeout(value: object) -> float:
    if value is None:
        from_env = _env_float(CHATDEBUG_EXIT_FLUSH_TIMEOUT, DEFAULT_EXIT_FLUSH_SECONDS)
        return _seconds(f"exit_flush_timeout from {CHATDEBUG_EXIT_FLUSH_TIMEOUT}", from_env)
    return _seconds("exit_flush_timeout", value)


def _names(option: str, value: object) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str):
        value = (value,)
    if not isinstance(value, Iterable):
        raise _type_error(option, "a str or an iterable of str", value)
    names = tuple(value)  # materialized once: a generator must not be used up here
    for name in names:
        if not isinstance(name, str):
            raise _type_error(f"{option} entry", "a str", name)
        if not name:
            raise ValueError(f"chatdebug.configure(): {option} entries must not be empty")
    return names


def _patterns(value: object) -> tuple[str | re.Pattern[str], ...]:
    if value is None:
        return ()
    if isinstance(value, str | re.Pattern):
        value = (value,)
    if not isinstance(value, Iterable):
        raise _type_error("redact_patterns", "a str, a re.Pattern or an iterable of them", value)
    patterns = tuple(value)
    for pattern in patterns:
        if not isinstance(pattern, str | re.Pattern):
            raise _type_error("redact_patterns entry", "a str or a compiled re.Pattern", pattern)
    return patterns
