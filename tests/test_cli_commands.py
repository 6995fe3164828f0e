"""``chatdebug runs`` / ``show`` / ``demo`` / ``finalize-stale`` / ``purge``."""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from chatdebug.cli import main
from chatdebug.store import NewRun, NewStep, RunUpdate, StepUpdate, open_store

ROOT = Path(__file__).resolve().parents[1]


def _seed(url: str) -> uuid.UUID:
    store = open_store(url)
    try:
        run = store.create_run(
            NewRun(chat_id="chat-7", user_id="u-1", summary={"first_message": "Hello there"})
        )
        step = store.create_step(
            NewStep(
                run_id=run.id,
                chat_id="chat-7",
                operation="generate",
                normalized_request={
                    "messages": [{"role": "user", "parts": [{"type": "text", "text": "Hi"}]}],
                    "model": "gpt-4o",
                },
            )
        )
        store.update_step(
            StepUpdate(
                id=step.id,
                chat_id="chat-7",
                status="error",
                usage={"input_tokens": 5, "output_tokens": 0, "total_tokens": 5},
                error={
                    "message": "Rate limit reached",
                    "type": "rate_limit_error",
                    "provider_status": 429,
                },
                attempts=[
                    {
                        "number": 1,
                        "status": "completed",
                        "method": "POST",
                        "path": "/v1/chat/completions",
                        "response_status": 429,
                        "request_headers": {"authorization": "[REDACTED]"},
                        "duration_ms": 12,
                    }
                ],
            )
        )
        store.update_run(
            RunUpdate(
                id=run.id,
                chat_id="chat-7",
                status="error",
                summary={
                    "first_message": "Hello there",
                    "step_count": 1,
                    "total_input_tokens": 5,
                    "total_output_tokens": 0,
                    "has_error": True,
                    "duration_ms": 40,
                },
            )
        )
        return run.id
    finally:
        store.close()


def test_runs_table_and_json(sqlite_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    run_id = _seed(sqlite_url)
    assert main(["--database-url", sqlite_url, "runs", "--chat", "chat-7"]) == 0
    table = capsys.readouterr().out
    assert str(run_id) in table and "error !" in table and "Hello there" in table
    assert main(["runs", "--chat", "chat-7", "--json", "--database-url", sqlite_url]) == 0
    (entry,) = json.loads(capsys.readouterr().out)
    assert entry["id"] == str(run_id)
    assert entry["status"] == "error"
    assert entry["summary"]["has_error"] is True
    assert set(entry) == {
        "id",
        "chat_id",
        "kind",
        "status",
        "summary",
        "started_at",
        "updated_at",
        "finished_at",
    }


def test_runs_of_unknown_chat_is_empty(sqlite_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--database-url", sqlite_url, "runs", "--chat", "nobody", "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == []


def test_show_text_and_json(sqlite_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    run_id = _seed(sqlite_url)
    assert main(["--database-url", sqlite_url, "show", str(run_id)]) == 0
    text = capsys.readouterr().out
    assert "rate_limit_error (HTTP 429): Rate limit reached" in text
    assert "authorization: [REDACTED]" in text
    assert "step 1  generate  error" in text
    assert main(["--database-url", sqlite_url, "show", str(run_id), "--json"]) == 0
    run = json.loads(capsys.readouterr().out)
    assert run["id"] == str(run_id) and run["user_id"] == "u-1"
    (step,) = run["steps"]
    assert step["step_number"] == 1 and step["error"]["provider_status"] == 429
    assert step["attempts"][0]["response_status"] == 429


@pytest.mark.parametrize(
    ("argv", "code", "message"),
    [
        (["show", "not-a-uuid"], 2, "invalid run id 'not-a-uuid'"),
        (["show", "8f14e45f-ceea-467f-a0e6-1a2b3c4d5e6f"], 1, "not found"),
        (["runs", "--chat", "c", "--status", "error"], 2, "leave out --chat"),
        (["finalize-stale", "--threshold", "soon"], 2, "invalid duration"),
    ],
)
def test_bad_input_is_one_line_and_an_exit_code(
    sqlite_url: str, capsys: pytest.CaptureFixture[str], argv: list[str], code: int, message: str
) -> None:
    assert main(["--database-url", sqlite_url, *argv]) == code
    err = capsys.readouterr().err
    assert message in err
    assert len(err.strip().splitlines()) == 1


def test_unreachable_database_is_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    url = "postgresql://postgres:hunter2-secret@127.0.0.1:1/x"
    assert main(["--database-url", url, "runs", "--chat", "c"]) == 1
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "hunter2-secret" not in err


def test_finalize_stale_and_purge(sqlite_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    store = open_store(sqlite_url, clock=lambda: datetime.now(UTC) - timedelta(days=40))
    try:
        old = store.create_run(NewRun(chat_id="old"))
        store.create_step(NewStep(run_id=old.id, chat_id="old", operation="stream"))
        done = store.create_run(NewRun(chat_id="done"))
        store.create_step(NewStep(run_id=done.id, chat_id="done", operation="generate"))
        store.update_run(RunUpdate(id=done.id, chat_id="done", status="completed"))
    finally:
        store.close()
    assert main(["--database-url", sqlite_url, "finalize-stale", "--threshold", "10m"]) == 0
    # the open run and its step, plus the step left open under the finished run
    assert "finalized 1 run(s) and 2 step(s)" in capsys.readouterr().out
    assert main(["--database-url", sqlite_url, "settings", "retention-days", "30"]) == 0
    capsys.readouterr()
    assert main(["--database-url", sqlite_url, "purge"]) == 0
    out = capsys.readouterr().out
    # the finished 40-day-old run goes with its step; finalize-stale bumped the other
    # run's updated_at to now, so that one is recent again
    assert "purged 1 run(s) and 1 step(s)" in out
    assert main(["--database-url", sqlite_url, "settings", "retention-days", "0"]) == 0
    capsys.readouterr()
    assert main(["--database-url", sqlite_url, "purge"]) == 0
    assert "retention is disabled" in capsys.readouterr().out


def test_demo_records_and_prints_a_run(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'demo.db'}"
    result = subprocess.run(
        [sys.executable, "-m", "chatdebug", "--database-url", url, "demo"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "status     completed" in out
    assert "tool call get_weather" in out
    assert "429" in out and "step 3  stream  completed" in out
    store = open_store(url)
    try:
        (run,) = store.list_runs("demo-chat")
        assert run.summary["step_count"] == 3
        steps = store.list_steps(run.id)
        assert [len(s.attempts) for s in steps] == [1, 2, 1]
        assert "sk-demo" not in json.dumps([s.attempts for s in steps])
    finally:
        store.close()
