"""``chatdebug demo``: a three-step chat turn against the built-in fake LLM, recorded and
printed, with no network and no API key."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from chatdebug.store import open_store
from tests.cli.support import chatdebug


@pytest.mark.slow
def test_demo_records_and_prints_a_run(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'demo.db'}"
    result = chatdebug("--database-url", url, "demo", cwd=tmp_path)
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
