"""``chatdebug export``: the same document as the API's export route, on both backends."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from starlette.testclient import TestClient

from chatdebug.cli import main
from chatdebug.store import Store
from tests.server._api_support import READ_TOKEN, build_app


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
