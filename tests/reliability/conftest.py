"""Fixtures of the fault-injection suite: a loopback provider, application processes,
a PostgreSQL proxy and store stalls on either backend."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from chatdebug.store import open_store
from tests.fakes import wire
from tests.fakes.server import FakeServer
from tests.fakes.tcp_proxy import TCPProxy
from tests.support import postgres_dsn, require_postgres

from ._driver import AppProcess, Stall, StartApp


@pytest.fixture
def provider() -> Iterator[FakeServer]:
    """A loopback OpenAI-compatible provider answering every call."""
    server = FakeServer()
    server.handler = lambda request: wire.openai_reply("ok")
    try:
        yield server
    finally:
        server.close()


@pytest.fixture
def start_app(provider: FakeServer, tmp_path: Path) -> Iterator[StartApp]:
    """Start application processes recording into ``url``; killed at teardown."""
    apps: list[AppProcess] = []

    def start(url: str, *, migrated: bool = True, **options: Any) -> AppProcess:
        if migrated:
            open_store(url).close()  # the schema exists before the database is cut
        log = tmp_path / f"app-{len(apps)}.log"
        app = AppProcess({"url": url, "provider": provider.url, **options}, log)
        apps.append(app)
        return app

    try:
        yield start
    finally:
        for app in apps:
            app.close()


@pytest.fixture
def pg_proxy(pg_url: str) -> Iterator[tuple[TCPProxy, str]]:
    """A TCP proxy in front of the test PostgreSQL, and the test schema's URL through it."""
    require_postgres()
    target = urlsplit(postgres_dsn())
    with TCPProxy(target.hostname or "127.0.0.1", target.port or 5432) as proxy:
        yield proxy, proxy.rewrite_url(pg_url)


@pytest.fixture(params=["sqlite", "postgresql"])
def stall(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Stall]:
    """The same test on both backends, with a way to stall the store."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'chatdebug.db'}"
        stall = Stall(url, None, url)
        try:
            yield stall
        finally:
            stall.close()
    else:
        proxy, url = request.getfixturevalue("pg_proxy")
        yield Stall(url, proxy, request.getfixturevalue("pg_url"))
