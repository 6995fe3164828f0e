"""``chatdebug runs`` across chats with filters and ``chatdebug export`` (the API's
export document), on both backends."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from starlette.testclient import TestClient

from chatdebug.cli import main
from chatdebug.store import NewRun, NewStep, RunUpdate, Store, open_store
from tests.server._api_support import READ_TOKEN, build_app


@pytest.fixture
def seeded(database_url: str) -> Any:
    store = open_store(database_url)
    now = store.create_run(NewRun(chat_id="probe")).started_at
    store.delete_by_chat("probe", now + timedelta(seconds=1))
    runs = {
        "old": store.create_run(
            NewRun(chat_id="chat-a", user_id="u-1", model="m-1", started_at=now - timedelta(days=3))
        ),
        "failed": store.create_run(NewRun(chat_id="chat-b", user_id="u-2", model="m-2")),
        "fine": store.create_run(
            NewRun(chat_id="chat-a", user_id="u-1", model="m-2", summary={"first_message": "hi"})
        ),
    }
    store.update_run(RunUpdate(id=runs["failed"].id, chat_id="chat-b", status="error"))
    store.update_run(RunUpdate(id=runs["fine"].id, chat_id="chat-a", status="completed"))
    store.create_step(NewStep(run_id=runs["old"].id, chat_id="chat-a", operation="generate"))
    yield database_url, store, {k: str(v.id) for k, v in runs.items()}
    store.close()


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


def test_export_writes_the_api_document(
    seeded: Any, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    url, store, ids = seeded
    target = tmp_path / "export.json"
    assert main(["--database-url", url, "export", "--chat", "chat-a", "--output", str(target)]) == 0
    assert "wrote 2 runs" in capsys.readouterr().err
    written = json.loads(target.read_text(encoding="utf-8"))
    with TestClient(build_app(store), headers={"Authorization": f"Bearer {READ_TOKEN}"}) as api:
        served = api.get("/api/chats/chat-a/debug/export").json()
    written.pop("exported_at"), served.pop("exported_at")
    assert written == served
    assert written["version"] == 1 and [r["id"] for r in written["runs"]] == [
        ids["fine"],
        ids["old"],
    ]
    assert len(written["runs"][1]["steps"]) == 1

    assert main(["--database-url", url, "export", "--chat", "nobody"]) == 0
    empty = json.loads(capsys.readouterr().out)
    assert (empty["run_count"], empty["runs"], empty["chat_id"]) == (0, [], "nobody")
    assert main(["--database-url", url, "export", "--chat", "c", "-o", str(tmp_path)]) == 1
    missing = str(tmp_path / "no-dir" / "x.json")
    assert main(["--database-url", url, "export", "--chat", "c", "-o", missing]) == 1
    assert "cannot write" in capsys.readouterr().err


def test_store_contract_is_used(seeded: Any) -> None:
    _, store, _ = seeded
    assert isinstance(store, Store)
