"""A chat's totals, added up by the database: the same numbers as adding up the runs'
summaries one by one (on both stores)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from chatdebug.store import Run, RunUpdate, Store
from tests.store.support import T0, is_sqlite, make_run, raw

SUMMARIES: list[dict[str, Any]] = [
    {
        "total_input_tokens": 10,
        "total_output_tokens": 5,
        "total_cost_usd": 0.1,
        "unpriced_step_count": 1,
        "steps_without_usage": 0,
    },
    {"total_input_tokens": 7, "total_cost_usd": 0.2},
    # not integers (nor numbers, for the cost): they count nothing
    {"total_input_tokens": True, "total_output_tokens": 2.0, "total_cost_usd": "0.5"},
    {"total_cost_usd": 3, "steps_without_usage": 2, "unpriced_step_count": -1},
    {},
    {"total_input_tokens": 12345678901, "total_cost_usd": 1e-7},
    {"total_cost_usd": False, "total_output_tokens": None},
]


def _expected(runs: list[Run]) -> dict[str, Any]:
    """The totals as the runs' summaries add up, newest run first."""
    integers = dict.fromkeys(
        ("total_input_tokens", "total_output_tokens", "unpriced_step_count", "steps_without_usage"),
        0,
    )
    cost: float | None = None
    for run in runs:
        summary = run.summary if isinstance(run.summary, dict) else {}
        for key in integers:
            value = summary.get(key)
            if isinstance(value, int) and not isinstance(value, bool):
                integers[key] += value
        value = summary.get("total_cost_usd")
        if isinstance(value, int | float) and not isinstance(value, bool):
            cost = (cost or 0.0) + float(value)
    return {
        "run_count": len(runs),
        "error_run_count": sum(run.status == "error" for run in runs),
        "in_progress_run_count": sum(run.status == "in_progress" for run in runs),
        **integers,
        "total_cost_usd": cost,
        "user_ids": sorted({run.user_id for run in runs if run.user_id is not None}),
        "first_started_at": runs[-1].started_at if runs else None,
        "last_started_at": runs[0].started_at if runs else None,
    }


def _totals(store: Store, chat_id: str, limit: int) -> dict[str, Any]:
    totals = store.chat_totals(chat_id, limit)
    return {name: getattr(totals, name) for name in _expected([])}


def test_chat_totals_add_up_the_newest_runs(store: Store, database_url: str) -> None:
    users = ["u-b", None, "u-a", "u-b", "u-é", None, "u-A"]
    for i, summary in enumerate(SUMMARIES):
        run = make_run(
            store,
            "chat-1",
            user_id=users[i],
            summary=summary,
            started_at=T0 - timedelta(seconds=i // 2),  # pairs share a moment
        )
        if i % 3:
            store.update_run(
                RunUpdate(
                    id=run.id, chat_id="chat-1", status="error" if i % 3 == 1 else "completed"
                )
            )
    make_run(store, "chat-2", user_id="u-z", summary={"total_input_tokens": 1000})
    # a summary that is not an object counts nothing
    odd = make_run(store, "chat-1", started_at=T0 - timedelta(days=1))
    raw(database_url, "UPDATE chat_debug_runs SET summary = %s WHERE id = %s", ["[1, 2]", odd.id])
    if is_sqlite(database_url):
        broken = make_run(store, "chat-1", started_at=T0 - timedelta(days=2))
        raw(
            database_url,
            "UPDATE chat_debug_runs SET summary = 'not json' WHERE id = %s",
            [broken.id],
        )

    runs = store.list_runs("chat-1", limit=100)
    assert len(runs) == len(SUMMARIES) + (2 if is_sqlite(database_url) else 1)
    for limit in (1, 4, 100):
        assert _totals(store, "chat-1", limit) == _expected(runs[:limit]), limit
    assert _totals(store, "no-such-chat", 100) == _expected([])
    assert _totals(store, "chat-1", 100)["user_ids"] == ["u-A", "u-a", "u-b", "u-é"]
