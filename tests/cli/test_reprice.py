"""``chatdebug reprice``: stored steps priced again, their runs summed again."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import pytest

from chatdebug.cli import main
from chatdebug.store import NewRun, NewStep, RunUpdate, StepUpdate, Store, open_store


def _seed(store: Store) -> uuid.UUID:
    run = store.create_run(NewRun(chat_id="chat-r"))
    for model, usage in (
        ("gpt-4o", {"input_tokens": 1000, "output_tokens": 100}),
        ("my-finetune", {"input_tokens": 2000, "output_tokens": 500}),
    ):
        step = store.create_step(
            NewStep(run_id=run.id, chat_id="chat-r", operation="generate", provider="openai")
        )
        store.update_step(
            StepUpdate(
                id=step.id,
                chat_id="chat-r",
                status="completed",
                usage=usage,
                metadata={"kept": True},
                provider="openai",
                model=model,
            )
        )
    store.update_run(RunUpdate(id=run.id, chat_id="chat-r", status="completed"))
    return run.id


def test_reprice_with_overrides(
    database_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    store = open_store(database_url)
    try:
        run_id = _seed(store)
        assert main(["--database-url", database_url, "reprice", "--dry-run"]) == 0
        assert "1 steps priced, 1 without a price; would change 2 steps" in capsys.readouterr().out
        assert all("cost" not in s.metadata for s in store.list_steps(run_id))

        prices = tmp_path / "prices.json"
        prices.write_text(json.dumps({"my-finetune": {"input_mtok": 1.0, "output_mtok": 4.0}}))
        args = ["--database-url", database_url, "reprice", "--prices", str(prices)]
        assert main(args) == 0
        assert "2 steps priced, 0 without a price; changed 2 steps" in capsys.readouterr().out
        first, second = store.list_steps(run_id)
        assert first.metadata["kept"] is True
        assert first.metadata["cost"]["match"] == "exact"
        assert second.metadata["cost"]["match"] == "override"
        assert second.metadata["cost"]["total_usd"] == pytest.approx(0.002 + 0.002)
        run = store.get_run(run_id)
        assert run is not None
        assert run.summary["total_cost_usd"] == pytest.approx(
            first.metadata["cost"]["total_usd"] + 0.004
        )
        assert "unpriced_step_count" not in run.summary

        assert main([*args, "--model", "GPT-4O"]) == 0
        assert "1 steps priced, 0 without a price; changed 0 steps" in capsys.readouterr().out
    finally:
        store.close()


def test_reprice_rejects_a_bad_prices_file(
    database_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"m": {"input_mtok": -2}}))
    assert main(["--database-url", database_url, "reprice", "--prices", str(bad)]) == 2
    assert "expected a non-negative number" in capsys.readouterr().err
