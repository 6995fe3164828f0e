"""``chatdebug runs`` (one chat, or across chats with filters) and ``chatdebug show``."""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest

from chatdebug.cli import main
from chatdebug.store import NewRun, NewStep, RunUpdate, StepUpdate, open_store


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
        "user_id",
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


def _runs_json(url: str, capsys: pytest.CaptureFixture[str], *options: str) -> list[str]:
    assert main(["--database-url", url, "runs", "--json", *options]) == 0
    return [run["id"] for run in json.loads(capsys.readouterr().out)]


def test_runs_across_chats_with_filters(seeded: Any, capsys: pytest.CaptureFixture[str]) -> None:
    url, _, ids = seeded
    assert _runs_json(url, capsys) == [ids["fine"], ids["failed"], ids["old"]]
    assert _runs_json(url, capsys, "--status", "error") == [ids["failed"]]
    assert _runs_json(url, capsys, "--since", "1h") == [ids["fine"], ids["failed"]]
    assert _runs_json(url, capsys, "--until", "1d") == [ids["old"]]
    assert _runs_json(url, capsys, "--user", "u-1") == [ids["fine"], ids["old"]]
    assert _runs_json(url, capsys, "--model", "m-2", "--limit", "1") == [ids["fine"]]
    assert _runs_json(url, capsys, "--chat", "chat-a") == [ids["fine"], ids["old"]]

    assert main(["--database-url", url, "runs", "--status", "error"]) == 0
    table = capsys.readouterr().out
    assert "CHAT" in table.splitlines()[0] and "chat-b" in table and ids["failed"] in table


@pytest.mark.parametrize(
    "options",
    [
        ["--since", "yesterday"],
        ["--since", "1y"],
        ["--status", "broken"],
        ["--chat", "chat-a", "--status", "error"],
        ["--limit", "0"],
    ],
)
def test_runs_rejects_bad_options(
    seeded: Any, capsys: pytest.CaptureFixture[str], options: list[str]
) -> None:
    url, _, _ = seeded
    assert main(["--database-url", url, "runs", *options]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err


def _seed_without_usage(url: str, *, reported: bool) -> uuid.UUID:
    """A streamed step whose provider sent no usage, after one that did when
    ``reported``; the summary as the exporter aggregates it."""
    store = open_store(url)
    try:
        run = store.create_run(NewRun(chat_id="chat-u", summary={"first_message": "Hi"}))
        usages: list[dict[str, Any] | None] = [{"input_tokens": 7, "output_tokens": 3}] * reported
        usages.append(None)
        for usage in usages:
            step = store.create_step(
                NewStep(run_id=run.id, chat_id="chat-u", operation="stream", normalized_request={})
            )
            metadata = {} if usage else {"usage_unavailable": "stream without include_usage"}
            store.update_step(
                StepUpdate(
                    id=step.id, chat_id="chat-u", status="completed", usage=usage, metadata=metadata
                )
            )
        store.update_run(
            RunUpdate(
                id=run.id,
                chat_id="chat-u",
                status="completed",
                summary={
                    "first_message": "Hi",
                    "step_count": len(usages),
                    "total_input_tokens": 7 if reported else 0,
                    "total_output_tokens": 3 if reported else 0,
                    "steps_without_usage": 1,
                },
            )
        )
        return run.id
    finally:
        store.close()


def _runs_row(url: str, capsys: pytest.CaptureFixture[str]) -> str:
    assert main(["--database-url", url, "runs", "--chat", "chat-u"]) == 0
    header, _, row = capsys.readouterr().out.splitlines()
    assert "TOKENS IN/OUT" in header
    return row


def test_usage_not_reported_reads_as_such_never_zero(
    sqlite_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    run_id = _seed_without_usage(sqlite_url, reported=False)
    row = _runs_row(sqlite_url, capsys)
    assert "not reported" in row and "0/0" not in row
    assert main(["--database-url", sqlite_url, "show", str(run_id)]) == 0
    text = capsys.readouterr().out
    assert "  tokens     not reported   steps 1" in text
    assert "step 1  stream  completed" in text
    assert "tokens not reported (stream without include_usage)" in text
    assert "in 0" not in text


def test_usage_partly_reported_shows_the_sum_and_the_rest(
    sqlite_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    run_id = _seed_without_usage(sqlite_url, reported=True)
    assert "7/3 (1 step not reported)" in _runs_row(sqlite_url, capsys)
    assert main(["--database-url", sqlite_url, "show", str(run_id)]) == 0
    text = capsys.readouterr().out
    assert "  tokens     in 7 / out 3 (1 step not reported)   steps 2" in text
    assert "tokens in 7 / out 3" in text  # step 1
    assert "tokens not reported (stream without include_usage)" in text  # step 2
