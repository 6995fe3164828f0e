"""Provider and model of steps (columns of migration 0003) and of runs filled from their
first labelled step; both backends."""

from __future__ import annotations

import sqlite3
import uuid
from contextlib import closing

import psycopg

from chatdebug.store import NewStep, RunUpdate, StepUpdate, Store, open_store
from tests.store.support import is_sqlite, make_run, make_step, raw


def test_step_provider_and_model_are_stored_and_kept(store: Store) -> None:
    run = make_run(store)
    step = make_step(store, run, provider="openai", model="gpt-4o")
    assert (step.provider, step.model) == ("openai", "gpt-4o")

    kept = store.update_step(StepUpdate(id=step.id, chat_id=run.chat_id, status="completed"))
    assert (kept.provider, kept.model) == ("openai", "gpt-4o")

    answered = store.update_step(
        StepUpdate(id=step.id, chat_id=run.chat_id, model="gpt-4o-2024-08-06")
    )
    assert (answered.provider, answered.model) == ("openai", "gpt-4o-2024-08-06")
    (listed,) = store.list_steps(run.id, payloads=False)
    assert (listed.provider, listed.model) == ("openai", "gpt-4o-2024-08-06")


def test_step_without_labels_has_none(store: Store) -> None:
    run = make_run(store)
    step = make_step(store, run)
    assert (step.provider, step.model) == (None, None)
    updated = store.update_step(StepUpdate(id=step.id, chat_id=run.chat_id, provider="anthropic"))
    assert (updated.provider, updated.model) == ("anthropic", None)


def test_finished_run_takes_labels_of_its_first_labelled_step(store: Store) -> None:
    run = make_run(store)
    # Step 1 failed before anything was known; step 2 knows both; step 3 another model.
    make_step(store, run, step_number=1)
    make_step(store, run, step_number=2, provider="anthropic", model="claude-opus-4-6")
    make_step(store, run, step_number=3, provider="openai", model="gpt-4o")
    finished = store.update_run(RunUpdate(id=run.id, chat_id=run.chat_id, status="completed"))
    assert (finished.provider, finished.model) == ("anthropic", "claude-opus-4-6")
    stored = store.get_run(run.id)
    assert stored is not None
    assert (stored.provider, stored.model) == ("anthropic", "claude-opus-4-6")


def test_labels_set_by_the_caller_win(store: Store) -> None:
    run = make_run(store, provider="azure", model="my-deployment")
    make_step(store, run, provider="openai", model="gpt-4o")
    finished = store.update_run(RunUpdate(id=run.id, chat_id=run.chat_id, status="completed"))
    assert (finished.provider, finished.model) == ("azure", "my-deployment")

    other = make_run(store, chat_id="chat-2")
    make_step(store, other, provider="openai", model="gpt-4o")
    given = store.update_run(
        RunUpdate(id=other.id, chat_id=other.chat_id, status="error", model="chosen")
    )
    # The model the caller gave at the end wins; the provider still comes from the step.
    assert (given.provider, given.model) == ("openai", "chosen")


def test_run_without_labelled_steps_stays_unlabelled(store: Store) -> None:
    run = make_run(store)
    make_step(store, run)
    finished = store.update_run(RunUpdate(id=run.id, chat_id=run.chat_id, status="completed"))
    assert (finished.provider, finished.model) == (None, None)
    empty = make_run(store, chat_id="chat-empty")
    done = store.update_run(RunUpdate(id=empty.id, chat_id=empty.chat_id, status="completed"))
    assert (done.provider, done.model) == (None, None)


def test_labels_of_other_runs_are_not_borrowed(store: Store) -> None:
    labelled = make_run(store)
    make_step(store, labelled, provider="openai", model="gpt-4o")
    bare = make_run(store)
    finished = store.update_run(RunUpdate(id=bare.id, chat_id=bare.chat_id, status="completed"))
    assert (finished.provider, finished.model) == (None, None)


def test_batched_step_labels_are_seen_by_the_run_finish(store: Store) -> None:
    run = make_run(store)
    step_id = uuid.uuid4()
    with store.batch():
        store.create_step(
            NewStep(id=step_id, run_id=run.id, chat_id=run.chat_id, operation="stream")
        )
        store.update_step(
            StepUpdate(
                id=step_id, chat_id=run.chat_id, status="completed", provider="openai",
                model="gpt-4o-mini",
            )
        )  # fmt: skip
        finished = store.update_run(RunUpdate(id=run.id, chat_id=run.chat_id, status="completed"))
    assert (finished.provider, finished.model) == ("openai", "gpt-4o-mini")


def test_columns_are_plain_sql(database_url: str) -> None:
    with closing(open_store(database_url)) as store:
        run = make_run(store)
        make_step(store, run, provider="openai", model="gpt-4o")
        make_step(store, run, provider="openai", model="gpt-4o")
        make_step(store, run, provider="anthropic", model="claude-opus-4-6")
    rows = raw(
        database_url,
        "SELECT provider, model, count(*) FROM chat_debug_steps GROUP BY provider, model "
        "ORDER BY provider",
    )
    assert rows == [("anthropic", "claude-opus-4-6", 1), ("openai", "gpt-4o", 2)]


def test_upgrade_from_version_2_keeps_existing_steps(database_url: str) -> None:
    """A database created before migration 0003 gains the columns; its rows read back
    unlabelled and are labelled by later writes."""
    from chatdebug.store import _postgres_sql, _sqlite_sql
    from chatdebug.store._migrations import migrations

    sqlite = is_sqlite(database_url)
    old = [m for m in migrations("sqlite" if sqlite else "postgres") if m.version <= 2]
    run_id, step_id = uuid.uuid4(), uuid.uuid4()
    statements = [m.sql for m in old] + [
        (_sqlite_sql if sqlite else _postgres_sql).CREATE_MIGRATIONS_TABLE,
        "INSERT INTO chat_debug_schema_migrations VALUES "
        "(1, 'init', '2025-01-01T00:00:00.000000Z'), "
        "(2, 'settings', '2025-01-01T00:00:00.000000Z')",
    ]
    if sqlite:
        conn = sqlite3.connect(database_url.removeprefix("sqlite:///"))
        with closing(conn):
            for statement in statements:
                conn.executescript(statement)
            conn.execute(
                "INSERT INTO chat_debug_runs (id, chat_id, kind, status) "
                "VALUES (?, 'c', 'chat_turn', 'in_progress')",
                (str(run_id),),
            )
            conn.execute(
                "INSERT INTO chat_debug_steps (id, run_id, chat_id, step_number, operation, "
                "status) VALUES (?, ?, 'c', 1, 'generate', 'completed')",
                (str(step_id), str(run_id)),
            )
            conn.commit()
    else:
        with psycopg.connect(database_url, autocommit=True) as pg:
            for statement in statements:
                pg.execute(statement.encode())
            pg.execute(
                "INSERT INTO chat_debug_runs (id, chat_id, kind, status) "
                "VALUES (%s, 'c', 'chat_turn', 'in_progress')",
                (run_id,),
            )
            pg.execute(
                "INSERT INTO chat_debug_steps (id, run_id, chat_id, step_number, operation, "
                "status) VALUES (%s, %s, 'c', 1, 'generate', 'completed')",
                (step_id, run_id),
            )
    with closing(open_store(database_url)) as store:
        (step,) = store.list_steps(run_id)
        assert (step.provider, step.model) == (None, None)
        store.update_step(StepUpdate(id=step_id, chat_id="c", provider="openai", model="o1"))
        finished = store.update_run(RunUpdate(id=run_id, chat_id="c", status="completed"))
        assert (finished.provider, finished.model) == ("openai", "o1")
