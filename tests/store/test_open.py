"""Opening stores: URLs, defaults, errors, threads, lost connections."""

from __future__ import annotations

import re
import threading
import uuid
from concurrent.futures import ThreadPoolExecutor
from contextlib import closing
from pathlib import Path

import psycopg
import pytest

from chatdebug.environment_variables import CHATDEBUG_DATABASE_URL
from chatdebug.store import (
    PostgresStore,
    SQLiteStore,
    Store,
    StoreConfigError,
    StoreError,
    StoreUnavailable,
    database_location,
    mask_password,
    open_store,
)
from tests.store.support import make_run, make_step, raw

PASSWORD = "s3cr3t-pw"


def _chain(exc: BaseException | None) -> list[BaseException]:
    found = []
    while exc is not None:
        found.append(exc)
        exc = exc.__cause__ or exc.__context__
    return found


def test_an_unsupported_scheme_gets_one_line_naming_the_accepted_ones() -> None:
    with pytest.raises(StoreConfigError) as caught:
        open_store("mysql://x")
    message = str(caught.value)
    assert "\n" not in message
    assert "'mysql://x'" in message
    for accepted in ("sqlite:///", "sqlite:////", "sqlite:///:memory:", "postgresql://"):
        assert accepted in message


@pytest.mark.parametrize(
    "url",
    [
        "sqlite://host/file.db",
        "sqlite:///",
        "sqlite:///file.db?mode=ro",
        "file:///tmp/x.db",
        "chatdebug.db",
        f"mysql://user:{PASSWORD}@host/db",
        f"postgresql://user:{PASSWORD}@[::1/db",
        f"postgresql://user:{PASSWORD}@host/db?no_such_option=1",
    ],
)
def test_unusable_urls_are_config_errors_without_the_password(url: str) -> None:
    with pytest.raises(StoreConfigError) as caught:
        open_store(url)
    assert "\n" not in str(caught.value)
    for exc in _chain(caught.value):
        assert PASSWORD not in str(exc)


@pytest.mark.parametrize(
    "url",
    [
        f"postgresql://postgres:{PASSWORD}@127.0.0.1:1/x",
        f"postgres://postgres:{PASSWORD}@127.0.0.1:1/x",
        f"postgresql://127.0.0.1:1/x?user=postgres&password={PASSWORD}",
    ],
)
def test_unreachable_postgres_is_unavailable_without_the_password(url: str) -> None:
    with pytest.raises(StoreUnavailable) as caught:
        open_store(url)
    message = str(caught.value)
    assert "\n" not in message
    assert "127.0.0.1:1" in message and "***" in message
    for exc in _chain(caught.value):
        assert PASSWORD not in str(exc) and PASSWORD not in repr(exc)


def test_a_missing_directory_is_unavailable(tmp_path: Path) -> None:
    path = tmp_path / "missing" / "chatdebug.db"
    with pytest.raises(StoreUnavailable, match=re.escape(str(path))):
        open_store(f"sqlite:///{path}")


def test_url_defaults_to_the_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(CHATDEBUG_DATABASE_URL, f"sqlite:///{tmp_path / 'from-env.db'}")
    with closing(open_store()) as store:
        assert isinstance(store, SQLiteStore)
        assert store.location == str(tmp_path / "from-env.db")
    assert (tmp_path / "from-env.db").exists()


def test_url_defaults_to_chatdebug_db_in_the_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(CHATDEBUG_DATABASE_URL, raising=False)
    monkeypatch.chdir(tmp_path)
    assert database_location() == str(tmp_path / "chatdebug.db")
    with closing(open_store()) as store:
        make_run(store)
    assert (tmp_path / "chatdebug.db").exists()


def test_relative_and_absolute_sqlite_paths(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "sub").mkdir()
    with closing(open_store("sqlite:///sub/relative.db")) as store:
        make_run(store)
    assert (tmp_path / "sub" / "relative.db").exists()
    absolute = tmp_path / "absolute.db"
    assert str(absolute).startswith("/")
    with closing(open_store(f"sqlite:///{absolute}")) as store:  # four slashes
        make_run(store)
    assert absolute.exists()


def test_memory_store_is_shared_by_threads_and_private_to_the_store() -> None:
    with closing(open_store("sqlite:///:memory:")) as store:
        run = make_run(store)
        with ThreadPoolExecutor(max_workers=4) as pool:
            numbers = list(pool.map(lambda _: make_step(store, run).step_number, range(20)))
        assert sorted(numbers) == list(range(1, 21))
        assert len(store.list_steps(run.id)) == 20
        with closing(open_store("sqlite:///:memory:")) as other:
            assert other.get_run(run.id) is None


def test_stores_satisfy_the_protocol(database_url: str) -> None:
    with closing(open_store(database_url)) as store:
        assert isinstance(store, Store)
        assert isinstance(store, SQLiteStore | PostgresStore)
        assert store.backend == ("sqlite" if database_url.startswith("sqlite") else "postgresql")


def test_a_closed_store_raises_store_error(database_url: str) -> None:
    store = open_store(database_url)
    store.close()
    store.close()  # idempotent
    with pytest.raises(StoreError):
        store.get_run(uuid.uuid4())


def test_mask_password() -> None:
    assert mask_password("postgresql://u:pw@h:5432/db") == "postgresql://u:***@h:5432/db"
    assert mask_password("postgresql://u@h/db") == "postgresql://u@h/db"
    assert mask_password("postgresql://h/db?user=u&password=pw&sslmode=require") == (
        "postgresql://h/db?user=u&password=***&sslmode=require"
    )
    assert database_location("postgres://u:pw@h/db") == "postgres://u:***@h/db"


def _with_application_name(pg_url: str, name: str) -> str:
    return f"{pg_url}&application_name={name}"


def test_postgres_survives_connections_lost_while_idle(pg_url: str) -> None:
    name = f"chatdebug-test-{uuid.uuid4().hex[:8]}"
    with closing(open_store(_with_application_name(pg_url, name))) as store:
        make_run(store)
        # What a server restart does to the pool's idle connections.
        killed = raw(
            pg_url,
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = %s",
            [name],
        )
        assert killed and all(ok for (ok,) in killed)
        run = make_run(store)
        assert store.get_run(run.id) == run


def test_postgres_connection_lost_mid_statement_is_unavailable(pg_url: str) -> None:
    name = f"chatdebug-test-{uuid.uuid4().hex[:8]}"
    with closing(open_store(_with_application_name(pg_url, name))) as store:
        raw(
            pg_url,
            "CREATE FUNCTION slow() RETURNS trigger LANGUAGE plpgsql AS $$ "
            "BEGIN PERFORM pg_sleep(30); RETURN NEW; END $$",
        )
        raw(
            pg_url,
            "CREATE TRIGGER slow BEFORE INSERT ON chat_debug_runs "
            "FOR EACH ROW EXECUTE FUNCTION slow()",
        )
        stop = threading.Event()

        def kill_when_busy() -> None:
            with psycopg.connect(pg_url, autocommit=True) as admin:
                while not stop.wait(0.05):
                    rows = admin.execute(
                        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                        "WHERE application_name = %s AND query LIKE %s AND state = 'active'",
                        [name, "%INSERT INTO chat_debug_runs%"],
                    ).fetchall()
                    if rows:
                        return

        killer = threading.Thread(target=kill_when_busy)
        killer.start()
        try:
            with pytest.raises(StoreUnavailable, match="unavailable"):
                make_run(store)
        finally:
            stop.set()
            killer.join()
        raw(pg_url, "DROP TRIGGER slow ON chat_debug_runs")
        run = make_run(store)  # the pool replaced the dead connection
        assert store.get_run(run.id) == run
