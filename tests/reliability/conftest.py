"""Fixtures of the fault-injection suite: a loopback provider, application processes,
a PostgreSQL proxy and store stalls on either backend."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from chatdebug.store import open_store
from tests.conftest import postgres_dsn, require_postgres
from tests.fakes import wire
from tests.fakes.server import FakeServer
from tests.fakes.tcp_proxy import TCPProxy

from ._driver import AppProcess

StartApp = Callable[..., AppProcess]


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

    def start(url: str, **options: Any) -> AppProcess:
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


_LOCK_HOLDER = textwrap.dedent(
    """
    import sqlite3, sys, time
    conn = sqlite3.connect(sys.argv[1], timeout=30, isolation_level=None)
    conn.execute("BEGIN EXCLUSIVE")
    print(time.time(), flush=True)
    sys.stdin.readline()  # held until told (or the test ends)
    conn.execute("COMMIT")
    print(time.time(), flush=True)
    """
)


class SQLiteLock:
    """Another process holding an exclusive transaction on the database file."""

    def __init__(self, path: str) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-c", _LOCK_HOLDER, path],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.proc.stdout is not None
        self.locked_at = float(self.proc.stdout.readline())

    def release(self) -> float:
        """Commit and let the process end; the wall-clock time of the commit."""
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write("\n")
        self.proc.stdin.flush()
        released_at = float(self.proc.stdout.readline())
        self.close()
        return released_at

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(timeout=10)
        for pipe in (self.proc.stdin, self.proc.stdout):
            if pipe is not None:
                pipe.close()


class Stall:
    """Makes the store unusable and usable again: a SQLite file locked by another
    process, or PostgreSQL behind a stopped proxy."""

    def __init__(self, url: str, proxy: TCPProxy | None, direct_url: str) -> None:
        self.url = url
        self.direct_url = direct_url  # for the test's own reads, past the proxy
        self._proxy = proxy
        self._lock: SQLiteLock | None = None

    def begin(self) -> None:
        if self._proxy is not None:
            self._proxy.stop()
        else:
            self._lock = SQLiteLock(self.url.removeprefix("sqlite:///"))

    def end(self) -> None:
        if self._proxy is not None:
            self._proxy.start()
        elif self._lock is not None:
            self._lock.release()
            self._lock = None

    def close(self) -> None:
        if self._lock is not None:
            self._lock.close()


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
