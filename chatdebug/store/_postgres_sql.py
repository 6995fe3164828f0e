"""SQL statements of the PostgreSQL backend (psycopg ``%(name)s`` parameters only).

Parameters that PostgreSQL cannot type from context carry an explicit cast. Every
statement returns rows, even the ones that only write: inside a batch the connection is
in pipeline mode, where a statement's outcome (its error, its row count) is known only
once its result has been fetched.
"""

from __future__ import annotations

from typing import Final

from ._rows import RUN_COLUMNS, STEP_COLUMNS, STEP_COLUMNS_WITHOUT_PAYLOADS

_PRIORITY: Final = (
    "(CASE status WHEN 'interrupted' THEN 1 WHEN 'error' THEN 2 WHEN 'completed' THEN 3 ELSE 0 END)"
)
# Keep the stored status when the new one is missing or would downgrade a terminal one.
_STATUS_GUARD: Final = (
    f"status = CASE WHEN %(status)s::text IS NULL THEN status "
    f"WHEN %(status_priority)s::int < {_PRIORITY} THEN status ELSE %(status)s::text END"
)
_TERMINAL: Final = "('completed', 'error', 'interrupted')"
# Advisory locks are per database; the second key scopes them to the schema in use, so
# separate chatdebug schemas in one database do not wait for each other.
_LOCK_SCOPE: Final = "hashtext(COALESCE(current_schema(), ''))"

MIGRATION_LOCK: Final = (
    f"SELECT pg_advisory_xact_lock(hashtext('chatdebug.migrate'), {_LOCK_SCOPE})"
)
PURGE_TRY_LOCK: Final = (
    f"SELECT pg_try_advisory_xact_lock(hashtext('chatdebug.purge'), {_LOCK_SCOPE})"
)
CREATE_MIGRATIONS_TABLE: Final = """
CREATE TABLE IF NOT EXISTS chat_debug_schema_migrations (
    version    INTEGER     PRIMARY KEY,
    name       TEXT        NOT NULL,
    applied_at TIMESTAMPTZ NOT NULL
)"""
MIGRATIONS_TABLE_EXISTS: Final = "SELECT to_regclass('chat_debug_schema_migrations') IS NOT NULL"
APPLIED_VERSIONS: Final = "SELECT version FROM chat_debug_schema_migrations"
RECORD_VERSION: Final = (
    "INSERT INTO chat_debug_schema_migrations (version, name, applied_at) "
    "VALUES (%(version)s, %(name)s, %(applied_at)s)"
)

INSERT_RUN: Final = f"""
INSERT INTO chat_debug_runs (
    id, chat_id, user_id, root_chat_id, parent_chat_id, model_config_id,
    trigger_message_id, history_tip_message_id, kind, status, provider, model, summary,
    started_at, updated_at, finished_at, trace_id, span_id
) VALUES (
    %(id)s, %(chat_id)s, %(user_id)s, %(root_chat_id)s, %(parent_chat_id)s,
    %(model_config_id)s, %(trigger_message_id)s, %(history_tip_message_id)s, %(kind)s,
    %(status)s, %(provider)s, %(model)s, %(summary)s::jsonb, %(started_at)s, %(updated_at)s,
    %(finished_at)s, %(trace_id)s, %(span_id)s
)
ON CONFLICT (id) DO NOTHING
RETURNING {RUN_COLUMNS}"""

# A run without provider/model of its own takes those of its first step that has them
# (COALESCE evaluates the subquery only when both earlier values are NULL).
_FIRST_STEP: Final = (
    "(SELECT s.{column} FROM chat_debug_steps AS s WHERE s.run_id = chat_debug_runs.id "
    "AND s.{column} IS NOT NULL ORDER BY s.step_number LIMIT 1)"
)
_FIRST_STEP_PROVIDER: Final = _FIRST_STEP.format(column="provider")
_FIRST_STEP_MODEL: Final = _FIRST_STEP.format(column="model")
UPDATE_RUN: Final = f"""
UPDATE chat_debug_runs SET
    {_STATUS_GUARD},
    provider = COALESCE(%(provider)s::text, provider, {_FIRST_STEP_PROVIDER}),
    model = COALESCE(%(model)s::text, model, {_FIRST_STEP_MODEL}),
    summary = COALESCE(%(summary)s::jsonb, summary),
    history_tip_message_id = COALESCE(%(history_tip_message_id)s::bigint, history_tip_message_id),
    trigger_message_id = COALESCE(%(trigger_message_id)s::bigint, trigger_message_id),
    model_config_id = COALESCE(%(model_config_id)s::text, model_config_id),
    finished_at = COALESCE(finished_at, %(finished_at)s::timestamptz),
    updated_at = %(now)s
WHERE id = %(id)s AND chat_id = %(chat_id)s
RETURNING {RUN_COLUMNS}"""

TOUCH_RUN: Final = (
    "UPDATE chat_debug_runs SET updated_at = %(now)s "
    "WHERE id = %(run_id)s AND chat_id = %(chat_id)s RETURNING id"
)
GET_RUN: Final = f"SELECT {RUN_COLUMNS} FROM chat_debug_runs WHERE id = %(id)s"
LIST_RUNS: Final = f"""
SELECT {RUN_COLUMNS} FROM chat_debug_runs WHERE chat_id = %(chat_id)s
ORDER BY started_at DESC, id DESC LIMIT %(limit)s"""


# A chat's newest runs added up: the integers and numbers of their summaries (an
# integer's text has no point or exponent), the cost in the listing's order (newest
# first) as the document adds it.
def _summary_integer(key: str) -> str:
    return (
        f"COALESCE(sum((summary ->> '{key}')::numeric) FILTER ("
        f"WHERE jsonb_typeof(summary -> '{key}') = 'number' "
        f"AND summary ->> '{key}' ~ '^-?[0-9]+$'), 0)"
    )


CHAT_TOTALS: Final = f"""
WITH newest AS (
    SELECT id, status, user_id, started_at, summary FROM chat_debug_runs
    WHERE chat_id = %(chat_id)s ORDER BY started_at DESC, id DESC LIMIT %(limit)s
)
SELECT count(*),
       count(*) FILTER (WHERE status = 'error'),
       count(*) FILTER (WHERE status = 'in_progress'),
       {_summary_integer("total_input_tokens")},
       {_summary_integer("total_output_tokens")},
       sum((summary ->> 'total_cost_usd')::float8 ORDER BY started_at DESC, id DESC)
           FILTER (WHERE jsonb_typeof(summary -> 'total_cost_usd') = 'number'),
       {_summary_integer("unpriced_step_count")},
       {_summary_integer("steps_without_usage")},
       COALESCE(array_agg(DISTINCT user_id) FILTER (WHERE user_id IS NOT NULL), '{{}}'),
       min(started_at), max(started_at)
FROM newest"""

# Runs of every chat, filtered; the conditions that apply are joined with AND.
RECENT_RUN_CONDITIONS: Final = {
    "chat_id": "chat_id = %(chat_id)s",
    "status": "status = %(status)s",
    "kind": "kind = %(kind)s",
    "user_id": "user_id = %(user_id)s",
    "model": "id IN (SELECT run_id FROM chat_debug_run_models WHERE model = %(model)s)",
    "since": "started_at >= %(since)s",
    "until": "started_at < %(until)s",
    "after": "(started_at, id) < (%(after_started_at)s, %(after_id)s)",
}


# Text search (see _postgres_search.py). %(q)s is one tsquery of every word as a prefix,
# 'a':* & 'b':*, matched against the words of the whole run; %(exact_N)s the tsquery of
# word N when the text search parser makes it a phrase of several (checked text by
# text: the run's words have no positions).
_RUN_MATCHES: Final = (
    "(SELECT s.document @@ %(q)s::tsquery FROM chat_debug_run_search AS s "
    "WHERE s.run_id = chat_debug_runs.id)"
)
_EXACT: Final = (
    "EXISTS (SELECT 1 FROM chat_debug_search AS d "
    "WHERE d.run_id = chat_debug_runs.id AND d.document @@ %(exact_{n})s::tsquery)"
)
_WINDOW: Final = "(started_at, id) >= (%(window_started_at)s, %(window_id)s)"


def search_word(word: str) -> str:
    """The text of one search word (letters and digits only) as a prefix query."""
    return f"'{word}':*"


# The model checked run by run (a scalar subquery: the planner keeps it per run).
_MODEL_PROBE: Final = (
    "(SELECT TRUE FROM chat_debug_run_models AS m "
    "WHERE m.model = %(model)s AND m.run_id = chat_debug_runs.id)"
)


def _where(conditions: list[str], model_probe: bool = False) -> list[str]:
    return [
        _MODEL_PROBE if name == "model" and model_probe else RECENT_RUN_CONDITIONS[name]
        for name in conditions
    ]


def _matches(exact: list[int]) -> list[str]:
    return [_RUN_MATCHES, *(_EXACT.format(n=n) for n in exact)]


def search_start(words: int, conditions: list[str]) -> str:
    """The tsquery of each search word (%(text_N)s, as the parser makes it: '' when it
    holds no word), then the position of the %(offset)s-th newest run (counted from 0)
    with the named conditions (``chat_id`` and the time conditions) and the planner's
    estimate of the number of runs, NULL when there are not that many runs."""
    queries = ", ".join(f"to_tsquery('simple', %(text_{n})s)::text" for n in range(words))
    where = " AND ".join(_where(conditions)) or "TRUE"
    return (
        f"SELECT {queries}, edge.* FROM (SELECT 1) AS one LEFT JOIN LATERAL ("
        "SELECT started_at, id, (SELECT reltuples FROM pg_class "
        f"WHERE oid = to_regclass('chat_debug_runs')) FROM chat_debug_runs WHERE {where} "
        "ORDER BY started_at DESC, id DESC OFFSET %(offset)s LIMIT 1) AS edge ON TRUE"
    )


def search_walk(conditions: list[str], exact: list[int], window: bool) -> str:
    """The runs with the named :data:`RECENT_RUN_CONDITIONS` that match the search
    (the phrases of the words numbered in ``exact`` too), read newest first and checked
    one by one (scalar subqueries, so the planner cannot turn them into a look-up of
    every match). With ``window``: only the runs of the window ending at
    (%(window_started_at)s, %(window_id)s), the model checked run by run too (the
    window is small); else the planner chooses how to apply the model."""
    parts = [*_where(conditions, window), *([_WINDOW] if window else []), *_matches(exact)]
    return (
        f"SELECT {RUN_COLUMNS} FROM chat_debug_runs WHERE {' AND '.join(parts)} "
        "ORDER BY started_at DESC, id DESC LIMIT %(limit)s"
    )


def search_window_matches(conditions: list[str], exact: list[int]) -> str:
    """How many runs of the window (with the named conditions only: those of
    :func:`search_start`) match the search."""
    parts = [*_where(conditions), _WINDOW, *_matches(exact)]
    return f"SELECT count(*) FROM chat_debug_runs WHERE {' AND '.join(parts)}"


def search_lookup(conditions: list[str], exact: list[int]) -> str:
    """The runs with the named conditions among the matches of %(q)s, looked up in the
    words' index first, newest first (older than the position (%(after_started_at)s,
    %(after_id)s)): the matches are sorted by start time, then checked in that order."""
    parts = ["id = hits.run_id", *_where(conditions, True), *_matches(exact)[1:]]
    # OFFSET 0 keeps the sorted matches a subquery of their own: the runs are then read
    # in that order, until the page is full.
    return (
        "SELECT found.* FROM (SELECT run_id, started_at FROM chat_debug_run_search "
        "WHERE document @@ %(q)s::tsquery "
        "AND (started_at, run_id) < (%(after_started_at)s, %(after_id)s) "
        "ORDER BY started_at DESC, run_id DESC OFFSET 0) AS hits CROSS JOIN LATERAL ("
        f"SELECT {RUN_COLUMNS} FROM chat_debug_runs WHERE {' AND '.join(parts)}) AS found "
        "ORDER BY hits.started_at DESC, hits.run_id DESC LIMIT %(limit)s"
    )


def recent_runs(conditions: list[str]) -> str:
    """The cross-chat listing with the named :data:`RECENT_RUN_CONDITIONS`."""
    where = " AND ".join(_where(conditions)) or "TRUE"
    return (
        f"SELECT {RUN_COLUMNS} FROM chat_debug_runs WHERE {where} "
        "ORDER BY started_at DESC, id DESC LIMIT %(limit)s"
    )


# Taken before INSERT_STEP when the store picks the number: concurrent writers of one
# run queue here, so the MAX() inside the insert (read after the lock) is current.
LOCK_RUN: Final = "SELECT 1 FROM chat_debug_runs WHERE id = %(run_id)s FOR NO KEY UPDATE"
# One statement: bump the open run of the same chat, and insert the step only if that
# found the run; otherwise no row. Number: the requested one, else the next free one
# (at least %(floor)s).
INSERT_STEP: Final = f"""
WITH locked_run AS (
    UPDATE chat_debug_runs SET updated_at = %(now)s
    WHERE id = %(run_id)s AND chat_id = %(chat_id)s AND finished_at IS NULL
    RETURNING id, chat_id
)
INSERT INTO chat_debug_steps (
    id, run_id, chat_id, step_number, operation, status, history_tip_message_id,
    assistant_message_id, normalized_request, normalized_response, usage, attempts, error,
    metadata, started_at, updated_at, finished_at, trace_id, span_id, provider, model,
    request_history_sent
)
SELECT
    %(id)s, r.id, r.chat_id,
    COALESCE(%(step_number)s::int, GREATEST(%(floor)s::int, (
        SELECT COALESCE(MAX(s.step_number), 0) + 1 FROM chat_debug_steps AS s
        WHERE s.run_id = r.id))),
    %(operation)s, %(status)s, %(history_tip_message_id)s::bigint,
    %(assistant_message_id)s::bigint, %(normalized_request)s::jsonb,
    %(normalized_response)s::jsonb, %(usage)s::jsonb, %(attempts)s::jsonb,
    %(error)s::jsonb, %(metadata)s::jsonb, %(started_at)s, %(updated_at)s,
    %(finished_at)s::timestamptz, %(trace_id)s, %(span_id)s, %(provider)s::text,
    %(model)s::text, %(request_history_sent)s::int
FROM locked_run AS r
ON CONFLICT (id) DO NOTHING
RETURNING {STEP_COLUMNS}"""
RUN_STATE: Final = (
    "SELECT chat_id, finished_at IS NOT NULL FROM chat_debug_runs WHERE id = %(run_id)s"
)

UPDATE_STEP: Final = f"""
UPDATE chat_debug_steps SET
    {_STATUS_GUARD},
    history_tip_message_id = COALESCE(%(history_tip_message_id)s::bigint, history_tip_message_id),
    assistant_message_id = COALESCE(%(assistant_message_id)s::bigint, assistant_message_id),
    request_history_sent = CASE WHEN %(normalized_request)s::jsonb IS NULL
                                THEN request_history_sent
                                ELSE %(request_history_sent)s::int END,
    normalized_request = COALESCE(%(normalized_request)s::jsonb, normalized_request),
    normalized_response = COALESCE(%(normalized_response)s::jsonb, normalized_response),
    usage = COALESCE(%(usage)s::jsonb, usage),
    attempts = COALESCE(%(attempts)s::jsonb, attempts),
    error = COALESCE(%(error)s::jsonb, error),
    metadata = COALESCE(%(metadata)s::jsonb, metadata),
    provider = COALESCE(%(provider)s::text, provider),
    model = COALESCE(%(model)s::text, model),
    finished_at = COALESCE(finished_at, %(finished_at)s::timestamptz),
    updated_at = %(now)s
WHERE id = %(id)s AND chat_id = %(chat_id)s
RETURNING {STEP_COLUMNS}"""

# The run first, then the step (the main statement needs the CTE's row): the lock order
# of every writer. Nothing changes unless step, run and chat belong together.
TOUCH_STEP: Final = """
WITH r AS (
    UPDATE chat_debug_runs SET updated_at = %(now)s
    WHERE id = %(run_id)s AND chat_id = %(chat_id)s AND EXISTS (
        SELECT 1 FROM chat_debug_steps
        WHERE id = %(step_id)s AND run_id = %(run_id)s AND chat_id = %(chat_id)s)
    RETURNING id
)
UPDATE chat_debug_steps AS s SET updated_at = %(now)s
FROM r WHERE s.id = %(step_id)s AND s.run_id = r.id AND s.chat_id = %(chat_id)s
RETURNING s.id"""
GET_STEP: Final = f"SELECT {STEP_COLUMNS} FROM chat_debug_steps WHERE id = %(id)s"
_STEPS_OF_RUN: Final = (
    "FROM chat_debug_steps WHERE run_id = %(run_id)s ORDER BY step_number, started_at"
)
LIST_STEPS: Final = f"SELECT {STEP_COLUMNS} {_STEPS_OF_RUN}"
LIST_STEPS_WITHOUT_PAYLOADS: Final = f"SELECT {STEP_COLUMNS_WITHOUT_PAYLOADS} {_STEPS_OF_RUN}"

# Deletions return how many runs they removed.
DELETE_BY_CHAT: Final = """
WITH gone AS (
    DELETE FROM chat_debug_runs
    WHERE chat_id = %(chat_id)s AND started_at < %(started_before)s
    RETURNING 1
)
SELECT count(*) FROM gone"""
DELETE_AFTER_MESSAGE: Final = """
WITH gone AS (
    DELETE FROM chat_debug_runs AS r
    WHERE r.chat_id = %(chat_id)s AND r.started_at < %(started_before)s AND (
        r.history_tip_message_id > %(message_id)s
        OR r.trigger_message_id > %(message_id)s
        OR EXISTS (
            SELECT 1 FROM chat_debug_steps AS s
            WHERE s.run_id = r.id AND s.chat_id = r.chat_id
              AND (s.assistant_message_id > %(message_id)s
                   OR s.history_tip_message_id > %(message_id)s)))
    RETURNING 1
)
SELECT count(*) FROM gone"""

# Oldest first; rows another transaction holds (a step being added) are left for the
# next batch rather than waited for.
PURGE: Final = """
WITH batch AS (
    SELECT id FROM chat_debug_runs WHERE updated_at < %(before)s
    ORDER BY updated_at LIMIT %(limit)s
    FOR UPDATE SKIP LOCKED
), steps AS (
    SELECT count(*) AS n FROM chat_debug_steps WHERE run_id IN (SELECT id FROM batch)
), gone AS (
    DELETE FROM chat_debug_runs WHERE id IN (SELECT id FROM batch) RETURNING 1
)
SELECT (SELECT count(*) FROM gone), (SELECT n FROM steps)"""

FINALIZE_STALE: Final = f"""
WITH runs AS (
    UPDATE chat_debug_runs
    SET status = 'interrupted', updated_at = %(now)s, finished_at = %(now)s
    WHERE finished_at IS NULL AND updated_at < %(cutoff)s AND status NOT IN {_TERMINAL}
    RETURNING id
), steps AS (
    UPDATE chat_debug_steps
    SET status = 'interrupted', updated_at = %(now)s, finished_at = %(now)s
    WHERE finished_at IS NULL AND status NOT IN {_TERMINAL}
      AND (updated_at < %(cutoff)s OR run_id IN (SELECT id FROM runs))
    RETURNING 1
)
SELECT (SELECT count(*) FROM runs), (SELECT count(*) FROM steps)"""

GET_SETTING: Final = "SELECT value FROM chat_debug_settings WHERE key = %(key)s"
SET_SETTING: Final = """
INSERT INTO chat_debug_settings (key, value, updated_at) VALUES (%(key)s, %(value)s, %(now)s)
ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value, updated_at = EXCLUDED.updated_at
RETURNING key"""
GET_USER_ENABLED: Final = (
    "SELECT debug_logging_enabled FROM chat_debug_user_settings WHERE user_id = %(user_id)s"
)
SET_USER_ENABLED: Final = """
INSERT INTO chat_debug_user_settings (user_id, debug_logging_enabled, updated_at)
VALUES (%(user_id)s, %(enabled)s, %(now)s)
ON CONFLICT (user_id) DO UPDATE SET
    debug_logging_enabled = EXCLUDED.debug_logging_enabled, updated_at = EXCLUDED.updated_at
RETURNING user_id"""

# The bulk write path (see _contract.py): the same statements, reading nothing back;
# executemany sums the row counts, which tell whether every write applied.
INSERT_RUN_BULK: Final = INSERT_RUN.rsplit("RETURNING", 1)[0]
INSERT_STEP_BULK: Final = INSERT_STEP.rsplit("RETURNING", 1)[0]
UPDATE_STEP_BULK: Final = UPDATE_STEP.rsplit("RETURNING", 1)[0]
TOUCH_RUN_BULK: Final = TOUCH_RUN.rsplit("RETURNING", 1)[0]
TOUCH_STEP_BULK: Final = TOUCH_STEP.rsplit("RETURNING", 1)[0]
UPDATE_RUN_BULK: Final = UPDATE_RUN.rsplit("RETURNING", 1)[0]
# The steps of several runs at once, without their two large payloads.
LIST_STEPS_OF_RUNS: Final = (
    f"SELECT {STEP_COLUMNS_WITHOUT_PAYLOADS} FROM chat_debug_steps "
    "WHERE run_id = ANY(%(run_ids)s::uuid[]) "
    "ORDER BY run_id, step_number, started_at"
)
