"""``chatdebug.configure()``: typed keyword-only options, every argument checked before
anything is opened, started or patched, and a failed setup undone."""

from __future__ import annotations

import base64
import inspect
import json
import math
import os
import re
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import httpx2
import pytest
from opentelemetry.sdk.trace import SpanProcessor, TracerProvider
from opentelemetry.trace import NoOpTracerProvider
from prometheus_client import CollectorRegistry

import chatdebug
from chatdebug import _configure
from chatdebug._lifecycle import exit_flush_timeout
from chatdebug.environment_variables import (
    CHATDEBUG_DATABASE_URL,
    CHATDEBUG_EXIT_FLUSH_TIMEOUT,
    CHATDEBUG_QUEUE_SIZE,
    CHATDEBUG_STALE_THRESHOLD_SECONDS,
)
from chatdebug.instrument import settings
from chatdebug.metrics import Metrics
from chatdebug.store import StoreConfigError, StoreUnavailable, open_store
from tests.fakes import wire
from tests.fakes.server import FakeServer

# What instrument_httpx() replaces on the client classes.
_PATCHED = [
    (cls, name)
    for cls in (httpx.Client, httpx.AsyncClient, httpx2.Client, httpx2.AsyncClient)
    for name in ("__init__", "_transport_for_url")
]
# Threads a configuration starts (the writer and heartbeat start with the first event).
_PIPELINE_THREADS = ("chatdebug-writer", "chatdebug-heartbeat")


@dataclass
class Untouched:
    """The process state a rejected ``configure()`` must leave as it found it."""

    db_path: Path
    methods: dict[tuple[type[Any], str], Any]
    threads: set[threading.Thread]
    config: chatdebug.Configuration | None
    instrument_settings: object
    exit_flush: float

    @classmethod
    def capture(cls, db_path: Path) -> Untouched:
        return cls(
            db_path,
            {(c, n): c.__dict__[n] for c, n in _PATCHED},
            _pipeline_threads(),
            _configure.current(),
            settings(),
            exit_flush_timeout(),
        )

    def check(self) -> None:
        leftovers = [p.name for p in self.db_path.parent.glob(self.db_path.name + "*")]
        assert not leftovers, f"configure() created {leftovers}"
        for (owner, name), method in self.methods.items():
            assert owner.__dict__[name] is method, f"{owner.__module__}.{owner.__name__}.{name}"
        assert _pipeline_threads() <= self.threads, "configure() started a thread"
        assert _configure.current() is self.config
        assert settings() is self.instrument_settings
        assert exit_flush_timeout() == self.exit_flush


def _pipeline_threads() -> set[threading.Thread]:
    return {t for t in threading.enumerate() if t.name.startswith(_PIPELINE_THREADS)}


def _open_fds(path: Path) -> list[str]:
    """Descriptors of this process open on the SQLite file or its -wal/-shm files."""
    fd_dir = Path("/proc/self/fd")
    found = []
    for entry in fd_dir.iterdir():
        try:
            target = os.readlink(entry)
        except OSError:
            continue  # closed meanwhile (the descriptor of the listing itself)
        if target.startswith(str(path)):
            found.append(target)
    return found


@pytest.fixture(autouse=True)
def _clean() -> Iterator[None]:
    chatdebug.shutdown()
    yield
    chatdebug.shutdown()
    chatdebug.uninstrument_httpx()


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "configured.db"


def _url(path: Path) -> str:
    return f"sqlite:///{path}"


def _metrics() -> Metrics:
    return Metrics(CollectorRegistry())


def test_signature_is_keyword_only_and_closed() -> None:
    params = inspect.signature(chatdebug.configure).parameters
    assert next(iter(params)) == "database_url"
    assert params["database_url"].kind is inspect.Parameter.POSITIONAL_OR_KEYWORD
    rest = list(params.values())[1:]
    assert all(p.kind is inspect.Parameter.KEYWORD_ONLY for p in rest)
    assert {p.name for p in rest} == {
        "enabled",
        "tracer_provider",
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
        "instrument_http",
        "exit_flush_timeout",
        "model_urls",
        "stream_usage",
        "prices",
        "prices_file",
        "spill_path",
        "spill_max_bytes",
        "spill_handoff",
    }
    assert params["max_body_bytes"].default == 50_000
    assert params["enablement_cache_seconds"].default == 5.0
    assert params["instrument_httpx"].default is False


def test_bad_tracer_provider_has_no_side_effect(db_path: Path) -> None:
    before = Untouched.capture(db_path)
    bad: Any = NoOpTracerProvider()  # an API provider: no span processors to add to
    with pytest.raises(TypeError, match=r"tracer_provider must be an opentelemetry\.sdk"):
        chatdebug.configure(
            _url(db_path),
            enabled=True,
            tracer_provider=bad,
            instrument_httpx=True,
            exit_flush_timeout=1.0,
            metrics=_metrics(),
        )
    before.check()


def test_unknown_keyword_is_pythons_type_error(db_path: Path) -> None:
    before = Untouched.capture(db_path)
    options: dict[str, Any] = {"queue_sizes": 5}
    with pytest.raises(TypeError, match="unexpected keyword argument 'queue_sizes'"):
        chatdebug.configure(_url(db_path), **options)
    before.check()


BAD_VALUES: list[tuple[dict[str, Any], type[Exception], str]] = [
    ({"enabled": "yes"}, TypeError, "enabled"),
    ({"enabled": 1}, TypeError, "enabled"),
    ({"tracer_provider": "global"}, TypeError, "tracer_provider"),
    ({"store": object()}, TypeError, "store"),
    ({"metrics": CollectorRegistry()}, TypeError, "metrics"),
    ({"queue_size": 0}, ValueError, "queue_size"),
    ({"queue_size": -3}, ValueError, "queue_size"),
    ({"queue_size": 1.5}, TypeError, "queue_size"),
    ({"queue_size": True}, TypeError, "queue_size"),
    ({"queue_size": "100"}, TypeError, "queue_size"),
    ({"stale_threshold": 0}, ValueError, "stale_threshold"),
    ({"stale_threshold": -1.0}, ValueError, "stale_threshold"),
    ({"stale_threshold": math.nan}, ValueError, "stale_threshold"),
    ({"stale_threshold": math.inf}, ValueError, "stale_threshold"),
    ({"stale_threshold": 1e300}, ValueError, "stale_threshold"),
    ({"stale_threshold": timedelta(0)}, ValueError, "stale_threshold"),
    ({"stale_threshold": "300"}, TypeError, "stale_threshold"),
    ({"redact_keys": [""]}, ValueError, "redact_keys"),
    ({"redact_keys": ["ok", 7]}, TypeError, "redact_keys"),
    ({"redact_keys": 7}, TypeError, "redact_keys"),
    ({"redact_headers": [None]}, TypeError, "redact_headers"),
    ({"redact_headers": [""]}, ValueError, "redact_headers"),
    ({"redact_patterns": ["("]}, ValueError, "redact_patterns"),
    ({"redact_patterns": ["a*"]}, ValueError, "redact_patterns"),  # matches ""
    ({"redact_patterns": [re.compile(b"x")]}, ValueError, "redact_patterns"),
    ({"redact_patterns": [b"x"]}, TypeError, "redact_patterns"),
    ({"redact_patterns": 7}, TypeError, "redact_patterns"),
    ({"max_body_bytes": -1}, ValueError, "max_body_bytes"),
    ({"max_body_bytes": None}, TypeError, "max_body_bytes"),
    ({"max_body_bytes": 1e6}, TypeError, "max_body_bytes"),
    ({"enablement_cache_seconds": -1}, ValueError, "enablement_cache_seconds"),
    ({"enablement_cache_seconds": math.inf}, ValueError, "enablement_cache_seconds"),
    ({"enablement_cache_seconds": None}, TypeError, "enablement_cache_seconds"),
    ({"instrument_httpx": "yes"}, TypeError, "instrument_httpx"),
    ({"instrument_httpx": 1}, TypeError, "instrument_httpx"),
    ({"exit_flush_timeout": -1}, ValueError, "exit_flush_timeout"),
    ({"exit_flush_timeout": math.nan}, ValueError, "exit_flush_timeout"),
    ({"exit_flush_timeout": "10"}, TypeError, "exit_flush_timeout"),
]


def _case_id(options: dict[str, Any]) -> str:
    ((name, value),) = options.items()
    plain = isinstance(value, int | float | str | list | timedelta)
    return f"{name}={value!r}" if plain else f"{name}={type(value).__name__}"


@pytest.mark.parametrize(
    ("options", "error", "option"),
    BAD_VALUES,
    ids=[_case_id(options) for options, _, _ in BAD_VALUES],
)
def test_bad_option_value_is_named_and_has_no_side_effect(
    db_path: Path, options: dict[str, Any], error: type[Exception], option: str
) -> None:
    before = Untouched.capture(db_path)
    # instrument_httpx=True rides along so that a patch applied too early would show.
    extra: dict[str, Any] = {"instrument_httpx": True, "metrics": _metrics()} | options
    with pytest.raises(error, match=rf"\b{option}\b"):
        chatdebug.configure(_url(db_path), enabled=True, **extra)
    before.check()


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("mysql://localhost/db", "unsupported database URL"),
        ("sqlite://host/x.db", "has a host part"),
        ("sqlite:///x.db?mode=ro", "query options"),
    ],
)
def test_unusable_database_url_has_no_side_effect(db_path: Path, url: str, message: str) -> None:
    before = Untouched.capture(db_path)
    with pytest.raises(StoreConfigError, match=message) as caught:
        chatdebug.configure(url, instrument_httpx=True, metrics=_metrics())
    assert isinstance(caught.value, ValueError)
    before.check()


def test_database_url_of_the_wrong_type(db_path: Path) -> None:
    before = Untouched.capture(db_path)
    with pytest.raises(TypeError, match="database_url must be a str"):
        chatdebug.configure(db_path, metrics=_metrics())  # type: ignore[arg-type]
    before.check()


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        (CHATDEBUG_QUEUE_SIZE, "0"),
        (CHATDEBUG_QUEUE_SIZE, "inf"),
        (CHATDEBUG_STALE_THRESHOLD_SECONDS, "-5"),
        (CHATDEBUG_EXIT_FLUSH_TIMEOUT, "-1"),
    ],
)
def test_environment_value_out_of_range_is_named(
    db_path: Path, monkeypatch: pytest.MonkeyPatch, variable: str, value: str
) -> None:
    monkeypatch.setenv(variable, value)
    before = Untouched.capture(db_path)
    with pytest.raises(ValueError, match=variable):
        chatdebug.configure(_url(db_path), metrics=_metrics())
    before.check()


def test_database_url_from_the_environment_is_checked_too(
    db_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(CHATDEBUG_DATABASE_URL, "sqlite://host/elsewhere.db")
    before = Untouched.capture(db_path)
    with pytest.raises(StoreConfigError, match="has a host part"):
        chatdebug.configure(metrics=_metrics())
    before.check()


def test_environment_fallbacks_apply(
    db_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv(CHATDEBUG_DATABASE_URL, _url(db_path))
    monkeypatch.setenv(CHATDEBUG_QUEUE_SIZE, "not-a-number")  # ignored with a warning
    monkeypatch.setenv(CHATDEBUG_STALE_THRESHOLD_SECONDS, "60")
    monkeypatch.setenv(CHATDEBUG_EXIT_FLUSH_TIMEOUT, "2.5")
    config = chatdebug.configure(metrics=_metrics())
    assert config.database_url == _url(db_path)
    assert db_path.exists()
    assert exit_flush_timeout() == 2.5
    assert f"ignoring {CHATDEBUG_QUEUE_SIZE}='not-a-number'" in caplog.text


def test_store_that_cannot_be_opened_is_undone(tmp_path: Path) -> None:
    missing = tmp_path / "no-such-dir" / "x.db"
    before = Untouched.capture(missing)
    with pytest.raises(StoreUnavailable) as caught:
        chatdebug.configure(_url(missing), instrument_httpx=True, metrics=_metrics())
    assert any("undid what it had done" in note for note in caught.value.__notes__)
    before.check()


class _RefusingProvider(TracerProvider):
    """An SDK provider that refuses further span processors."""

    def add_span_processor(self, span_processor: SpanProcessor) -> None:
        raise RuntimeError("this provider takes no more processors")


def test_failure_after_the_store_was_opened_closes_it(db_path: Path) -> None:
    before = Untouched.capture(db_path)
    provider = _RefusingProvider()
    try:
        with pytest.raises(RuntimeError, match="no more processors") as caught:
            chatdebug.configure(
                _url(db_path),
                enabled=True,
                tracer_provider=provider,
                instrument_httpx=True,
                metrics=_metrics(),
            )
    finally:
        provider.shutdown()
    assert any("undid what it had done" in note for note in caught.value.__notes__)
    assert db_path.exists()  # the store was opened (and its schema created)...
    assert _open_fds(db_path) == []  # ...and closed again
    db_path.unlink()
    for sidecar in db_path.parent.glob(db_path.name + "-*"):
        sidecar.unlink()
    before.check()


def test_failed_reconfiguration_keeps_the_previous_one(
    db_path: Path, fake_server: FakeServer
) -> None:
    config = chatdebug.configure(_url(db_path), enabled=True, metrics=_metrics())
    with pytest.raises(ValueError, match="queue_size"):
        chatdebug.configure(_url(db_path), enabled=True, queue_size=0, metrics=_metrics())
    provider = _RefusingProvider()
    try:
        with pytest.raises(RuntimeError, match="no more processors"):
            chatdebug.configure(_url(db_path), tracer_provider=provider, metrics=_metrics())
    finally:
        provider.shutdown()
    assert _configure.current() is config
    run_id = _record_one_run(fake_server, "chat-kept")
    assert chatdebug.flush()
    assert [r.id for r in config.store.list_runs("chat-kept")] == [run_id]


# Secrets that only the redaction options of the end-to-end test remove.
SECRETS = {"customer_ssn": "123-45-6789", "x-tenant-key": "tenant-secret", "acct": "acct-12345678"}


def _record_one_run(server: FakeServer, chat_id: str, *, patched: bool = False) -> uuid.UUID:
    server.enqueue(wire.openai_reply("configured"))
    client = httpx.Client() if patched else chatdebug.httpx_client()
    body = {
        "model": "gpt-4o",
        "messages": [{"role": "user", "content": f"my account is {SECRETS['acct']}"}],
        "customer_ssn": SECRETS["customer_ssn"],
    }
    headers = {"X-Tenant-Key": SECRETS["x-tenant-key"]}
    with client, chatdebug.run(chat_id, user_id="u-1", first_message="hi") as run:
        response = client.post(server.url + "/v1/chat/completions", json=body, headers=headers)
        assert response.status_code == 200
    assert run.id is not None, "the run did not record"
    return run.id


def test_valid_configuration_records_end_to_end(db_path: Path, fake_server: FakeServer) -> None:
    original_init = httpx.Client.__dict__["__init__"]
    config = chatdebug.configure(
        _url(db_path),
        enabled=True,
        metrics=_metrics(),
        queue_size=100,
        stale_threshold=timedelta(minutes=1),
        redact_keys="customer_ssn",
        redact_headers=["x-tenant-key"],
        redact_patterns=[r"acct-\d{8}"],
        max_body_bytes=10_000,
        enablement_cache_seconds=0,
        instrument_httpx=True,
        exit_flush_timeout=5,
    )
    assert httpx.Client.__dict__["__init__"] is not original_init  # instrument_httpx=True
    assert exit_flush_timeout() == 5.0
    run_id = _record_one_run(fake_server, "chat-e2e", patched=True)  # a plain httpx.Client
    assert chatdebug.flush()
    chatdebug.shutdown()
    assert _open_fds(db_path) == []  # shutdown() closed the store
    store = open_store(_url(db_path))
    try:
        (run,) = store.list_runs("chat-e2e")
        assert run.id == run_id and run.status == "completed"
        (step,) = store.list_steps(run_id)
        assert step.status == "completed"
    finally:
        store.close()
    assert config.database_url == _url(db_path)
    stored = json.dumps(step.normalized_request) + json.dumps(step.attempts)
    stored += base64.b64decode(step.attempts[0]["request_body"]).decode()
    for secret in SECRETS.values():
        assert secret not in stored
    assert "[REDACTED]" in stored


def test_same_arguments_return_the_same_configuration(db_path: Path) -> None:
    metrics = _metrics()
    original_init = httpx.Client.__dict__["__init__"]
    first = chatdebug.configure(
        _url(db_path), enabled=True, metrics=metrics, redact_keys=["a"], stale_threshold=60
    )
    again = chatdebug.configure(
        _url(db_path),
        enabled=True,
        metrics=metrics,
        redact_keys=["a"],  # an equal list, not the same one
        stale_threshold=timedelta(seconds=60),
        instrument_httpx=True,  # patches, but does not rebuild the pipeline
    )
    assert again is first
    assert httpx.Client.__dict__["__init__"] is not original_init
    other = chatdebug.configure(_url(db_path), enabled=True, metrics=metrics, queue_size=50)
    assert other is not first
    assert _configure.current() is other
    assert _open_fds(db_path), "the new configuration's store is open"


def test_reconfiguring_with_the_same_store_keeps_it_open(db_path: Path) -> None:
    store = open_store(_url(db_path))
    metrics = _metrics()
    chatdebug.configure(_url(db_path), store=store, metrics=metrics)
    second = chatdebug.configure(_url(db_path), store=store, metrics=metrics, queue_size=50)
    assert second.store is store
    assert store.list_runs("anything") == []  # still usable
    chatdebug.shutdown()
    assert _open_fds(db_path) == []  # the configuration owned it: shutdown() closed it
