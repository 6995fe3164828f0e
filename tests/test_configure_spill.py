"""``configure()``'s spill journal options: where the journal goes by default (on for
PostgreSQL, off for SQLite), the environment, the checks, and a PostgreSQL server that
does not answer yet when a journal is there to hold what is recorded meanwhile."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest

import chatdebug
from chatdebug._configure import Configuration
from chatdebug.store import StoreUnavailable
from tests.fakes.tcp_proxy import TCPProxy


@pytest.fixture(autouse=True)
def _clean() -> Iterator[None]:
    chatdebug.shutdown()
    yield
    chatdebug.shutdown()


def journal_path(config: Configuration) -> Path | None:
    spill = config.processor._writer._spill
    return None if spill is None else spill.path


def test_postgresql_has_a_journal_by_default_and_sqlite_none(
    pg_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("CHATDEBUG_SPILL_PATH")
    monkeypatch.chdir(tmp_path)
    assert journal_path(chatdebug.configure(pg_url)) == tmp_path / "chatdebug-spill.db"
    assert journal_path(chatdebug.configure(f"sqlite:///{tmp_path / 'c.db'}")) is None
    assert journal_path(chatdebug.configure(f"sqlite:///{tmp_path / 'c.db'}", spill_path=True)) == (
        tmp_path / "chatdebug-spill.db"
    )
    assert journal_path(chatdebug.configure(pg_url, spill_path=False)) is None
    monkeypatch.setenv("CHATDEBUG_SPILL_PATH", str(tmp_path / "from-env.db"))
    assert journal_path(chatdebug.configure(pg_url)) == tmp_path / "from-env.db"
    monkeypatch.setenv("CHATDEBUG_SPILL_PATH", "off")
    assert journal_path(chatdebug.configure(pg_url)) is None
    # Nothing is created before something is spilled.
    assert not list(tmp_path.glob("chatdebug-spill*")) and not list(tmp_path.glob("from-env*"))


@pytest.mark.parametrize(
    ("options", "error", "message"),
    [
        ({"spill_path": 3}, TypeError, "spill_path must be a path"),
        ({"spill_path": ""}, ValueError, "spill_path must not be empty"),
        ({"spill_max_bytes": 0}, ValueError, "spill_max_bytes must be at least 1"),
        ({"spill_max_bytes": 1.5}, TypeError, "spill_max_bytes must be an int"),
        ({"spill_handoff": 0}, ValueError, "spill_handoff must be a finite number"),
    ],
)
def test_bad_spill_options_are_named(
    tmp_path: Path, options: dict[str, object], error: type[Exception], message: str
) -> None:
    with pytest.raises(error, match=message):
        chatdebug.configure(f"sqlite:///{tmp_path / 'c.db'}", **options)  # type: ignore[arg-type]
    assert not (tmp_path / "c.db").exists()


def test_a_directory_is_not_a_journal(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="is a directory"):
        chatdebug.configure(f"sqlite:///{tmp_path / 'c.db'}", spill_path=tmp_path)


@pytest.mark.slow
def test_a_database_down_at_startup_is_not_an_error_with_a_journal(
    pg_url: str, tmp_path: Path
) -> None:
    target = urlsplit(pg_url)
    with TCPProxy(target.hostname or "127.0.0.1", target.port or 5432) as proxy:
        proxy.stop()
        url = proxy.rewrite_url(pg_url)
        with pytest.raises(StoreUnavailable):
            chatdebug.configure(url, spill_path=False)
        config = chatdebug.configure(url, enabled=True, spill_path=tmp_path / "spill.db")
        with chatdebug.run("c-early") as run:
            pass
        assert not chatdebug.flush(1.0)  # waiting in the journal, not written
        proxy.start()
        # The store connects and creates its schema; then the journal is written.
        assert chatdebug.flush(30.0)
        stored = config.store.get_run(run.id)
        assert stored is not None and stored.status == "completed"
    assert os.path.exists(tmp_path / "spill.db.lock")
