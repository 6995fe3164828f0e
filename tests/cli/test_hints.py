"""``chatdebug runs`` / ``show`` finding nothing say whether recording is on and how to
turn it on; stdout stays the table or the JSON."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from chatdebug.cli import main
from chatdebug.cli._hints import nothing_found_hint
from chatdebug.store import open_store

RUN_ID = "8f14e45f-ceea-467f-a0e6-1a2b3c4d5e6f"
FORCE = "configure(enabled=True) or CHATDEBUG_ENABLED=1 in the application"


@pytest.fixture(autouse=True)
def not_forced_here(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CHATDEBUG_ENABLED", raising=False)


def _location(sqlite_url: str) -> str:
    return str(Path(sqlite_url.removeprefix("sqlite:///")).resolve())


def test_runs_with_allow_users_off(sqlite_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--database-url", sqlite_url, "runs", "--chat", "c-1"]) == 0
    out, err = capsys.readouterr()
    assert out == "no runs\n"
    command = f"chatdebug --database-url {sqlite_url}"
    assert err.splitlines() == [
        f"chatdebug: nothing found in {_location(sqlite_url)}. Recording is off for every "
        "user unless the application forces it: the admin setting allow_users is off.",
        f"Turn it on: `{command} settings allow-users on`, then "
        f"`{command} settings user USER on`; or record every run with {FORCE}.",
    ]


def test_runs_json_stays_json(sqlite_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    with open_store(sqlite_url) as store:
        store.set_allow_users(True)
    assert main(["--database-url", sqlite_url, "runs", "--chat", "c-1", "--json"]) == 0
    out, err = capsys.readouterr()
    assert json.loads(out) == []
    assert "allow_users is on: runs record for users who opted in" in err
    assert f"`chatdebug --database-url {sqlite_url} settings user USER on`" in err


def test_show_unknown_run_is_still_one_line(
    sqlite_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["--database-url", sqlite_url, "show", RUN_ID]) == 1
    out, err = capsys.readouterr()
    assert out == ""
    (line,) = err.strip().splitlines()
    assert line.startswith(f"chatdebug: run {RUN_ID} not found in {_location(sqlite_url)}. ")
    assert "the admin setting allow_users is off" in line
    assert "settings allow-users on`" in line


def test_runs_found_print_no_hint(sqlite_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    from chatdebug.store import NewRun

    with open_store(sqlite_url) as store:
        store.create_run(NewRun(chat_id="c-1", kind="chat_turn", status="completed"))
    assert main(["--database-url", sqlite_url, "runs", "--chat", "c-1"]) == 0
    out, err = capsys.readouterr()
    assert "chat_turn" in out and err == ""


def test_hint_for_a_known_user(sqlite_url: str) -> None:
    with open_store(sqlite_url) as store:
        lines = nothing_found_hint(store, user_id="u-7")
        assert "Recording is off for user 'u-7' unless the application forces it" in lines[0]
        store.set_allow_users(True)
        status, fix = nothing_found_hint(store, user_id="u-7")
        assert status.endswith(
            ". Recording is off for user 'u-7': allow_users is on, but not opted in."
        )
        assert fix == (
            f"Turn it on: `chatdebug settings user u-7 on`; or record every run with {FORCE}."
        )
        store.set_user_enabled("u-7", True)
        (line,) = nothing_found_hint(store, user_id="u-7", lead="no runs of chat 'c-1'")
        assert line.startswith("chatdebug: no runs of chat 'c-1' in ")
        assert "Recording is on for user 'u-7' (allow_users on, opted in)" in line


def test_hint_hides_a_database_password(sqlite_url: str) -> None:
    with open_store(sqlite_url) as store:
        (_, fix) = nothing_found_hint(store, database_url=None)
        assert "`chatdebug settings allow-users on`" in fix
    from chatdebug.cli._hints import _command

    assert _command("settings allow-users on", "postgresql://u:hunter2@db/x") == (
        "`chatdebug --database-url URL settings allow-users on`"
    )
    assert (
        _command("x", "postgresql://u@db/x") == "`chatdebug --database-url postgresql://u@db/x x`"
    )


def test_forced_in_this_shell(
    sqlite_url: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("CHATDEBUG_ENABLED", "1")
    assert main(["--database-url", sqlite_url, "runs", "--chat", "c-1"]) == 0
    err = capsys.readouterr().err
    assert "CHATDEBUG_ENABLED is set here" in err
    assert "check that it writes to this database" in err
