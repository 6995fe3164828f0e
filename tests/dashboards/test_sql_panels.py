"""Every SQL query of the runs dashboard, as Grafana sends it (macros expanded), on a real
PostgreSQL with the real schema and recorded runs: the expected columns and rows."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import psycopg
import pytest

from chatdebug.store import NewRun, NewStep, RunUpdate, StepUpdate, Store, open_store
from dashboards import runs
from tests.dashboards._grafana import expand_sql
from tests.store.support import FakeClock

DASHBOARD = Path(__file__).resolve().parents[2] / "dashboards" / "chatdebug-runs.json"
# Whole hours, so the one-hour buckets of "Runs by status" are predictable.
NOW = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) + timedelta(hours=1)
BASE = NOW - timedelta(hours=3)
RANGE = (BASE - timedelta(hours=1), NOW + timedelta(minutes=5))


@dataclass
class Recorded:
    store: Store
    url: str
    ids: dict[str, uuid.UUID]


def _run(
    store: Store,
    clock: FakeClock,
    name: str,
    chat_id: str,
    start: datetime,
    steps: list[dict[str, Any]],
    end: timedelta | None,
    status: str = "completed",
    summary: dict[str, Any] | None = None,
    user_id: str | None = None,
) -> uuid.UUID:
    clock.set(start)
    run = store.create_run(
        NewRun(
            chat_id=chat_id,
            user_id=user_id,
            started_at=start,
            summary={"first_message": f"Hello {name}"},
        )
    )
    for number, step in enumerate(steps, 1):
        clock.set(start + timedelta(milliseconds=10 * number))
        created = store.create_step(
            NewStep(
                run_id=run.id,
                chat_id=chat_id,
                operation="generate",
                provider=step["provider"],
                model=step["model"],
                started_at=clock.now,
            )
        )
        store.update_step(
            StepUpdate(
                id=created.id,
                chat_id=chat_id,
                status="error" if step.get("error") else "completed",
                usage=step.get("usage"),
                error=step.get("error"),
                metadata=step.get("metadata"),
            )
        )
    if end is not None:
        clock.set(start + end)
        store.update_run(
            RunUpdate(
                id=run.id,
                chat_id=chat_id,
                status=status,
                summary={"first_message": f"Hello {name}", **(summary or {})},
                finished_at=start + end,
            )
        )
    return run.id


def _usage(inp: Any, out: Any) -> dict[str, Any]:
    return {"input_tokens": inp, "output_tokens": out}


GPT = {"provider": "openai", "model": "gpt-4o"}
OVERLOADED = {"message": "overloaded", "type": "APIStatusError"}
CLAUDE = {"provider": "anthropic", "model": "claude-opus-4-6"}
NOT_REPORTED = {"usage_unavailable": "stream without include_usage"}


def _cost(total: float) -> dict[str, Any]:
    # The shape chatdebug's pricing writes (chatdebug/exporter/_pricing.py).
    return {
        "cost": {
            "total_usd": total, "input_usd": total / 2, "output_usd": total / 2,
            "cache_read_usd": 0.0, "cache_write_usd": 0.0, "match": "exact",
        }
    }  # fmt: skip


NO_PRICE = {"cost_unavailable": "model has no price"}
NO_USAGE = {"cost_unavailable": "usage unknown"}


@pytest.fixture
def recorded(pg_url: str) -> Iterator[Recorded]:
    clock = FakeClock(BASE)
    store = open_store(pg_url, clock=clock)
    ids = {
        # Priced $0.50, then a step without a price: the run's cost is $0.50, and the
        # average per priced call must not count the unpriced one as $0.
        "a": _run(
            store, clock, "a", "chat-a", BASE,
            [
                {**GPT, "usage": _usage(100, 20), "metadata": _cost(0.5)},
                {**GPT, "usage": _usage(50, 10), "metadata": NO_PRICE},
            ],
            timedelta(seconds=3), user_id="u-1",
            summary={"total_cost_usd": 0.5, "unpriced_step_count": 1},
        ),
        "b": _run(
            store, clock, "b", "chat-b", BASE + timedelta(minutes=10),
            [{**CLAUDE, "usage": _usage(10, 0), "error": OVERLOADED, "metadata": NO_PRICE}],
            timedelta(seconds=1), status="error", user_id="u-2",
            # A malformed total (a string) is left out, never a failure.
            summary={"unpriced_step_count": 1, "total_cost_usd": "lots"},
        ),
        # Completed after a failed step that a retry recovered from; its usage is
        # malformed (a string), which must not break the token sums.
        "c": _run(
            store, clock, "c", "chat-a", BASE + timedelta(hours=1, minutes=5),
            [{**GPT, "usage": _usage("many", 7), "metadata": _cost(0.75)}],
            timedelta(seconds=2), summary={"has_error": True, "total_cost_usd": 0.75},
            user_id="u-2",
        ),
        # Open, silent since it started: stale. Its step has no usage, and no reason for it;
        # its cost is malformed (a string), which must not break the cost sums.
        "d": _run(
            store, clock, "d", "chat-d", BASE + timedelta(hours=2),
            [{**GPT, "metadata": {"cost": {"total_usd": "lots"}}}], None,
        ),
        # A stream whose provider sent no usage (it did not ask for it): unknown, not 0.
        "g": _run(
            store, clock, "g", "chat-g", BASE + timedelta(hours=1, minutes=30),
            [{**GPT, "metadata": {**NOT_REPORTED, **NO_USAGE}}], timedelta(milliseconds=1500),
            user_id="u-1", summary={"unpriced_step_count": 1},
        ),
        # Open and alive (heartbeat a few seconds ago): not stale.
        "e": _run(
            store, clock, "e", "chat-e", datetime.now(UTC) - timedelta(seconds=5), [], None
        ),
        # Outside the time range.
        "f": _run(
            store, clock, "f", "chat-a", BASE - timedelta(days=2),
            [{**GPT, "usage": _usage(1000, 1000), "metadata": _cost(100.0)}],
            timedelta(seconds=9), user_id="u-1", summary={"total_cost_usd": 100.0},
        ),
    }  # fmt: skip
    try:
        yield Recorded(store, pg_url, ids)
    finally:
        store.close()


def query(
    recorded: Recorded, title: str, interval: str = "1h"
) -> tuple[list[str], list[tuple[Any, ...]]]:
    panel = next(p for p in json.loads(DASHBOARD.read_text())["panels"] if p.get("title") == title)
    (target,) = panel["targets"]
    sql = expand_sql(
        target["rawSql"], *RANGE, interval=interval,
        variables={runs.STALE_VARIABLE: "300"},
    )  # fmt: skip
    with psycopg.connect(recorded.url, autocommit=True) as conn:
        cur = conn.execute(sql.encode())
        assert cur.description is not None
        return [c.name for c in cur.description], cur.fetchall()


def test_every_panel_query_is_tested() -> None:
    tested = {
        "Recent runs", "Failing runs", "Tokens by chat", "Tokens by model", "Runs by status",
        "Longest runs", "Open runs past the stale threshold", "Cost by chat", "Cost by user",
        "Cost by model", "Most expensive runs",
    }  # fmt: skip
    assert set(runs.QUERIES) == tested


def test_recent_runs(recorded: Recorded) -> None:
    columns, rows = query(recorded, "Recent runs")
    assert columns == [
        "started", "status", "kind", "model", "steps", "tokens", "steps without usage",
        "duration", "first message", "chat", "run",
    ]  # fmt: skip
    ids = recorded.ids
    assert [r[-1] for r in rows] == [str(ids[k]) for k in ("e", "d", "g", "c", "b", "a")]
    by_run = {r[-1]: r for r in rows}
    a = by_run[str(ids["a"])]
    # The run's model comes from its first step (it was not given when it started).
    assert a[1:9] == ("completed", "chat_turn", "gpt-4o", 2, 180, 0, 3000, "Hello a")
    b = by_run[str(ids["b"])]
    assert b[1:9] == ("error", "chat_turn", "claude-opus-4-6", 1, 10, 0, 1000, "Hello b")
    assert by_run[str(ids["c"])][5] == 7  # the malformed input count is left out
    # No usage reported: no token count, not 0.
    assert by_run[str(ids["g"])][1:8] == ("completed", "chat_turn", "gpt-4o", 1, None, 1, 1500)
    assert by_run[str(ids["d"])][1:8] == ("in_progress", "chat_turn", None, 1, None, 0, None)
    assert by_run[str(ids["e"])][1:8] == ("in_progress", "chat_turn", None, 0, None, 0, None)


def test_failing_runs(recorded: Recorded) -> None:
    columns, rows = query(recorded, "Failing runs")
    assert columns == [
        "started", "status", "kind", "model", "last error", "first message", "chat", "run",
    ]  # fmt: skip
    ids = recorded.ids
    assert [(r[1], r[4], r[-2], r[-1]) for r in rows] == [
        ("completed", None, "chat-a", str(ids["c"])),
        ("error", "overloaded", "chat-b", str(ids["b"])),
    ]


def test_tokens_by_chat(recorded: Recorded) -> None:
    columns, rows = query(recorded, "Tokens by chat")
    assert columns == ["chat", "input tokens", "output tokens", "runs", "calls without usage"]
    assert rows == [
        ("chat-a", Decimal(150), Decimal(37), 2, 0),
        ("chat-b", Decimal(10), Decimal(0), 1, 0),
        ("chat-d", None, None, 1, 0),
        ("chat-g", None, None, 1, 1),
    ]


def test_tokens_by_model(recorded: Recorded) -> None:
    columns, rows = query(recorded, "Tokens by model")
    assert columns == ["model", "input tokens", "output tokens", "calls", "calls without usage"]
    assert rows == [
        ("gpt-4o", Decimal(150), Decimal(37), 5, 1),
        ("claude-opus-4-6", Decimal(10), Decimal(0), 1, 0),
    ]


def test_runs_by_status(recorded: Recorded) -> None:
    columns, rows = query(recorded, "Runs by status", interval="1h")
    assert columns == ["time", "metric", "runs"]
    hour = 3600

    def bucket(moment: datetime) -> Decimal:
        return Decimal(int(moment.timestamp()) // hour * hour)

    e_start = datetime.now(UTC) - timedelta(seconds=5)
    expected = sorted(
        [
            (bucket(BASE), "completed", 1),
            (bucket(BASE), "error", 1),
            (bucket(BASE + timedelta(hours=1)), "completed", 1),
            (bucket(BASE + timedelta(hours=1, minutes=30)), "completed", 1),
            (bucket(BASE + timedelta(hours=2)), "in_progress", 1),
            (bucket(e_start), "in_progress", 1),
        ]
    )
    merged: dict[tuple[Decimal, str], int] = {}
    for t, status, n in expected:
        merged[(t, status)] = merged.get((t, status), 0) + n
    assert [(Decimal(r[0]), r[1], r[2]) for r in rows] == [
        (t, s, n) for (t, s), n in sorted(merged.items())
    ]


def test_longest_runs(recorded: Recorded) -> None:
    columns, rows = query(recorded, "Longest runs")
    assert columns == [
        "duration", "started", "status", "kind", "model", "steps", "first message", "chat",
        "run",
    ]  # fmt: skip
    ids = recorded.ids
    assert [(r[0], r[-1]) for r in rows] == [
        (3000, str(ids["a"])), (2000, str(ids["c"])), (1500, str(ids["g"])),
        (1000, str(ids["b"])),
    ]  # fmt: skip


def test_open_runs_past_the_stale_threshold(recorded: Recorded) -> None:
    columns, rows = query(recorded, "Open runs past the stale threshold")
    assert columns == [
        "started", "last heartbeat", "silent for", "kind", "model", "steps", "chat", "run",
    ]  # fmt: skip
    ids = recorded.ids
    assert [(r[-2], r[-1], r[5]) for r in rows] == [("chat-d", str(ids["d"]), 1)]
    assert rows[0][2] >= 300


def test_macros_expand_like_grafana() -> None:
    start = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
    end = datetime(2025, 3, 1, 13, 0, 0, 500000, tzinfo=UTC)
    sql = "SELECT $__timeGroupAlias(t, $__interval), 1 WHERE $__timeFilter(t) AND t < $__timeTo()"
    assert expand_sql(sql, start, end, interval="5m") == (
        'SELECT floor(extract(epoch from t)/300)*300 AS "time", 1 '
        "WHERE t BETWEEN '2025-03-01T12:00:00Z' AND '2025-03-01T13:00:00.5Z' "
        "AND t < '2025-03-01T13:00:00.5Z'"
    )
    with pytest.raises(ValueError, match="unexpanded"):
        expand_sql("SELECT $__unixEpochFilter(t)", start, end)


COST_COLUMNS = ["cost", "priced calls", "average cost per priced call", "unpriced calls"]


def test_cost_by_chat(recorded: Recorded) -> None:
    columns, rows = query(recorded, "Cost by chat")
    assert columns == ["chat", *COST_COLUMNS, "runs"]
    assert rows == [
        # $0.50 + $0.75 over the two priced calls: the unpriced one is not a $0 call.
        ("chat-a", Decimal("1.25"), 2, Decimal("0.625"), 1, 2),
        ("chat-b", None, 0, None, 1, 1),
        ("chat-d", None, 0, None, 0, 1),
        ("chat-g", None, 0, None, 1, 1),
    ]


def test_cost_by_user(recorded: Recorded) -> None:
    columns, rows = query(recorded, "Cost by user")
    assert columns == ["user", *COST_COLUMNS, "runs"]
    assert rows == [
        ("u-2", Decimal("0.75"), 1, Decimal("0.75"), 1, 2),
        ("u-1", Decimal("0.5"), 1, Decimal("0.5"), 2, 2),
        ("(none)", None, 0, None, 0, 1),
    ]


def test_cost_by_model(recorded: Recorded) -> None:
    columns, rows = query(recorded, "Cost by model")
    assert columns == ["model", *COST_COLUMNS]
    assert rows == [
        ("gpt-4o", Decimal("1.25"), 2, Decimal("0.625"), 2),
        ("claude-opus-4-6", None, 0, None, 1),
    ]


def test_most_expensive_runs(recorded: Recorded) -> None:
    columns, rows = query(recorded, "Most expensive runs")
    assert columns == [
        "cost", "started", "status", "kind", "model", "steps", "unpriced steps",
        "first message", "chat", "user", "run",
    ]  # fmt: skip
    ids = recorded.ids
    # Only runs with a cost: not b (nothing priced, a malformed total), g, or f (older).
    assert [(r[0], r[5], r[6], r[-3], r[-2], r[-1]) for r in rows] == [
        (Decimal("0.75"), 1, 0, "chat-a", "u-2", str(ids["c"])),
        (Decimal("0.5"), 2, 1, "chat-a", "u-1", str(ids["a"])),
    ]
