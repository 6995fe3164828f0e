"""``chatdebug migrate`` and ``chatdebug settings``, as scripts see them."""

from __future__ import annotations

import json
import urllib.parse
from pathlib import Path

import pytest

from chatdebug.cli import main
from chatdebug.store._migrations import migrations
from tests.cli.support import chatdebug
from tests.store.support import raw

ALL_VERSIONS = ", ".join(str(m.version) for m in migrations("sqlite"))

# The schema ``chatdebug migrate`` creates: its tables and indexes, by name.
TABLES = {
    "chat_debug_runs",
    "chat_debug_steps",
    "chat_debug_settings",
    "chat_debug_user_settings",
    "chat_debug_schema_migrations",
    "chat_debug_search",
    "chat_debug_run_models",
}
INDEXES = {
    "idx_chat_debug_runs_id_chat",
    "idx_chat_debug_runs_chat_started",
    "idx_chat_debug_runs_stale",
    "idx_chat_debug_runs_updated_at",
    "idx_chat_debug_steps_run_step",
    "idx_chat_debug_steps_chat_tip",
    "idx_chat_debug_steps_chat_assistant_msg",
    "idx_chat_debug_steps_stale",
    "idx_chat_debug_runs_started",
    "idx_chat_debug_steps_started",
    "idx_chat_debug_search_run",
    "idx_chat_debug_run_models_run",
    "idx_chat_debug_runs_status_started",
    "idx_chat_debug_runs_user_started",
}
UNIQUE = {"idx_chat_debug_runs_id_chat", "idx_chat_debug_steps_run_step"}
PARTIAL = {
    "idx_chat_debug_runs_stale",
    "idx_chat_debug_steps_stale",
    "idx_chat_debug_steps_chat_assistant_msg",
}


@pytest.mark.slow
def test_migrate_creates_the_sqlite_schema(tmp_path: Path) -> None:
    path = tmp_path / "new.db"
    result = chatdebug("migrate", "--database-url", f"sqlite:///{path}")

    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    assert result.stdout.splitlines() == [
        "backend:  sqlite",
        f"database: {path}",
        f"schema:   applied versions {ALL_VERSIONS}",
    ]
    url = f"sqlite:///{path}"
    tables = {n for (n,) in raw(url, "SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert tables >= TABLES | {"chat_debug_search_fts"}
    indexes = dict(
        raw(url, "SELECT name, sql FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL")
    )
    assert set(indexes) == INDEXES
    for name in UNIQUE:
        assert indexes[name].startswith("CREATE UNIQUE INDEX")
    for name in PARTIAL:
        assert " WHERE " in indexes[name]
    fks = raw(
        url,
        'SELECT "table", "from", "to", on_delete '
        "FROM pragma_foreign_key_list('chat_debug_steps')",
    )
    assert sorted(fks) == [
        ("chat_debug_runs", "chat_id", "chat_id", "CASCADE"),
        ("chat_debug_runs", "run_id", "id", "CASCADE"),
    ]
    assert raw(url, "PRAGMA journal_mode") == [("wal",)]

    again = chatdebug("--database-url", f"sqlite:///{path}", "migrate")
    assert again.returncode == 0
    assert again.stdout.splitlines()[-1] == "schema:   already up to date"


@pytest.mark.slow
def test_migrate_with_a_relative_path_reports_the_absolute_file(tmp_path: Path) -> None:
    result = chatdebug("migrate", "--database-url", "sqlite:///rel.db", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert f"database: {tmp_path / 'rel.db'}" in result.stdout.splitlines()


@pytest.mark.slow
def test_migrate_creates_the_postgres_schema(pg_url: str) -> None:
    # Trust authentication ignores the password, which must still never be printed.
    parts = urllib.parse.urlsplit(pg_url)
    with_password = parts._replace(netloc=f"postgres:pw-never-shown@{parts.hostname}:{parts.port}")
    url = urllib.parse.urlunsplit(with_password)
    result = chatdebug("migrate", "--database-url", url)

    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == "backend:  postgresql"
    assert lines[1].startswith("database: postgresql://postgres:***@")
    assert lines[2] == f"schema:   applied versions {ALL_VERSIONS}"
    assert "pw-never-shown" not in result.stdout + result.stderr

    tables = {
        n
        for (n,) in raw(
            pg_url, "SELECT tablename FROM pg_tables WHERE schemaname = current_schema()"
        )
    }
    assert tables == TABLES | {"chat_debug_run_search"}
    indexes = dict(
        raw(
            pg_url,
            "SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = current_schema() "
            "AND indexname LIKE 'idx_%%'",
        )
    )
    # PostgreSQL's text search index (the words of each run); SQLite's is the FTS5
    # table chat_debug_search_fts.
    assert set(indexes) == INDEXES | {"idx_chat_debug_run_search_document"}
    assert "USING gin (document)" in indexes["idx_chat_debug_run_search_document"]
    for name in UNIQUE:
        assert indexes[name].startswith("CREATE UNIQUE INDEX")
    for name in PARTIAL:
        assert " WHERE " in indexes[name]
    assert "started_at DESC" in indexes["idx_chat_debug_runs_chat_started"]
    fk = raw(
        pg_url,
        "SELECT pg_get_constraintdef(oid) FROM pg_constraint "
        "WHERE conname = 'fk_chat_debug_steps_run_chat' "
        "AND connamespace = current_schema()::regnamespace",
    )
    assert fk == [
        ("FOREIGN KEY (run_id, chat_id) REFERENCES chat_debug_runs(id, chat_id) ON DELETE CASCADE",)
    ]

    again = chatdebug("migrate", "--database-url", pg_url)
    assert again.returncode == 0
    assert again.stdout.splitlines()[-1] == "schema:   already up to date"


@pytest.mark.slow
@pytest.mark.parametrize(
    ("args", "code", "needle"),
    [
        (["migrate", "--database-url", "mysql://u:s3cr3t-pw@x/db"], 2, "accepted: sqlite:///"),
        (
            ["migrate", "--database-url", "postgresql://u:s3cr3t-pw@127.0.0.1:1/x"],
            1,
            "cannot connect",
        ),
        ([], 2, "required"),
        (["no-such-command"], 2, "invalid choice"),
        (["migrate", "--no-such-option"], 2, "unrecognized arguments"),
    ],
)
def test_bad_input_prints_one_line_and_exits_nonzero(
    args: list[str], code: int, needle: str, tmp_path: Path
) -> None:
    result = chatdebug(*args, cwd=tmp_path)
    assert result.returncode == code
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("chatdebug")
    assert needle in lines[0]
    assert "s3cr3t-pw" not in lines[0]
    assert "Traceback" not in result.stderr


def test_settings_commands(database_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    db = ["--database-url", database_url]

    assert main(["settings", "show", *db]) == 0
    shown = capsys.readouterr().out
    assert "allow_users:          off" in shown and "retention_days:       30" in shown

    assert main(["settings", "allow-users", "on", *db]) == 0
    assert capsys.readouterr().out == "allow_users: on\n"
    assert main([*db, "settings", "user", "u-7", "ON"]) == 0
    assert capsys.readouterr().out == "user u-7: on\n"
    assert main(["settings", "user", "u-8", *db]) == 0
    assert capsys.readouterr().out == "user u-8: off\n"
    assert main(["settings", "retention-days", "0", *db]) == 0
    assert capsys.readouterr().out == "retention_days: 0\n"

    assert main(["settings", "show", "--json", "--user", "u-7", *db]) == 0
    assert json.loads(capsys.readouterr().out) == {
        "allow_users": True,
        "retention_days": 0,
        "forced_by_deployment": False,
        "user": {"id": "u-7", "enabled": True},
    }


@pytest.mark.parametrize(
    "args",
    [
        ["settings", "retention-days", "3651"],
        ["settings", "retention-days", "-1"],
        ["settings", "retention-days", "many"],
        ["settings", "allow-users", "maybe"],
        ["settings"],
    ],
)
def test_settings_reject_invalid_values(
    args: list[str], database_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main([*args, "--database-url", database_url]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert len(captured.err.splitlines()) == 1
    assert captured.err.startswith("chatdebug")


def test_settings_default_to_chatdebug_db_in_the_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("CHATDEBUG_DATABASE_URL", raising=False)
    monkeypatch.chdir(tmp_path)
    assert main(["settings", "retention-days", "9"]) == 0
    assert (tmp_path / "chatdebug.db").exists()
    assert raw(
        f"sqlite:///{tmp_path / 'chatdebug.db'}",
        "SELECT value FROM chat_debug_settings WHERE key = 'retention_days'",
    ) == [("9",)]
    capsys.readouterr()
