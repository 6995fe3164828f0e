"""SQL statements of the SQLite backend (named ``:parameters`` only).

SQLite has no data-modifying CTEs, so what PostgreSQL does in one statement is here a
few statements inside one ``BEGIN IMMEDIATE`` transaction, which holds the database's
single write lock from start to end: nothing can interleave.
"""

from __future__ import annotations

from typing import Final

from ._rows import RUN_COLUMNS, STEP_COLUMNS, STEP_COLUMNS_WITHOUT_PAYLOADS

_PRIORITY: Final = (
    "(CASE status WHEN 'interrupted' THEN 1 WHEN 'error' THEN 2 WHEN 'completed' THEN 3 ELSE 0 END)"
)
# Keep the stored status when the new one is missing or would downgrade a terminal one.
_STATUS_GUARD: Final = (
    f"status = CASE WHEN :status IS NULL THEN status "
    f"WHEN :status_priority < {_PRIORITY} THEN status ELSE :status END"
)
_TERMINAL: Final = "('completed', 'error', 'interrupted')"

CREATE_MIGRATIONS_TABLE: Final = """
CREATE TABLE IF NOT EXISTS chat_debug_schema_migrations (
    version    INTEGER PRIMARY KEY NOT NULL,
    name       TEXT    NOT NULL,
    applied_at TEXT    NOT NULL
)"""
MIGRATIONS_TABLE_EXISTS: Final = (
    "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'chat_debug_schema_migrations'"
)
APPLIED_VERSIONS: Final = "SELECT version FROM chat_debug_schema_migrations"
RECORD_VERSION: Final = (
    "INSERT INTO chat_debug_schema_migrations (version, name, applied_at) "
    "VALUES (:version, :name, :applied_at)"
)

INSERT_RUN: Final = f"""
INSERT INTO chat_debug_runs (
    id, chat_id, user_id, root_chat_id, parent_chat_id, model_config_id,
    trigger_message_id, history_tip_message_id, kind, status, provider, model, summary,
    started_at, updated_at, finished_at, trace_id, span_id
) VALUES (
    :id, :chat_id, :user_id, :root_chat_id, :parent_chat_id, :model_config_id,
    :trigger_message_id, :history_tip_message_id, :kind, :status, :provider, :model, :summary,
    :started_at, :updated_at, :finished_at, :trace_id, :span_id
)
ON CONFLICT (id) DO NOTHING
RETURNING {RUN_COLUMNS}"""

# A run without provider/model of its own takes those of its first step that has them.
_FIRST_STEP: Final = (
    "(SELECT s.{column} FROM chat_debug_steps AS s WHERE s.run_id = chat_debug_runs.id "
    "AND s.{column} IS NOT NULL ORDER BY s.step_number LIMIT 1)"
)
_FIRST_STEP_PROVIDER: Final = _FIRST_STEP.format(column="provider")
_FIRST_STEP_MODEL: Final = _FIRST_STEP.format(column="model")
UPDATE_RUN: Final = f"""
UPDATE chat_debug_runs SET
    {_STATUS_GUARD},
    provider = COALESCE(:provider, provider, {_FIRST_STEP_PROVIDER}),
    model = COALESCE(:model, model, {_FIRST_STEP_MODEL}),
    summary = COALESCE(:summary, summary),
    history_tip_message_id = COALESCE(:history_tip_message_id, history_tip_message_id),
    trigger_message_id = COALESCE(:trigger_message_id, trigger_message_id),
    model_config_id = COALESCE(:model_config_id, model_config_id),
    finished_at = COALESCE(finished_at, :finished_at),
    updated_at = :now
WHERE id = :id AND chat_id = :chat_id
RETURNING {RUN_COLUMNS}"""

TOUCH_RUN: Final = (
    "UPDATE chat_debug_runs SET updated_at = :now WHERE id = :run_id AND chat_id = :chat_id"
)
GET_RUN: Final = f"SELECT {RUN_COLUMNS} FROM chat_debug_runs WHERE id = :id"
LIST_RUNS: Final = f"""
SELECT {RUN_COLUMNS} FROM chat_debug_runs WHERE chat_id = :chat_id
ORDER BY started_at DESC, id DESC LIMIT :limit"""


# A chat's newest runs added up: the integers (json_type 'integer') and numbers of their
# summaries, the cost in the listing's order (newest first) as the document adds it.
def _summary_integer(key: str) -> str:
    return (
        f"COALESCE(sum(CASE WHEN json_type(summary, '$.{key}') = 'integer' "
        f"THEN json_extract(summary, '$.{key}') END), 0)"
    )


CHAT_TOTALS: Final = f"""
WITH newest AS (
    SELECT status, user_id, started_at,
           CASE WHEN json_valid(summary) THEN summary END AS summary
    FROM chat_debug_runs WHERE chat_id = :chat_id
    ORDER BY started_at DESC, id DESC LIMIT :limit
)
SELECT count(*),
       count(CASE WHEN status = 'error' THEN 1 END),
       count(CASE WHEN status = 'in_progress' THEN 1 END),
       {_summary_integer("total_input_tokens")},
       {_summary_integer("total_output_tokens")},
       sum(CASE WHEN json_type(summary, '$.total_cost_usd') IN ('integer', 'real')
           THEN json_extract(summary, '$.total_cost_usd') END),
       {_summary_integer("unpriced_step_count")},
       {_summary_integer("steps_without_usage")},
       json_group_array(DISTINCT user_id) FILTER (WHERE user_id IS NOT NULL),
       min(started_at), max(started_at)
FROM newest"""

# Runs of every chat, filtered; the conditions that apply are joined with AND.
RECENT_RUN_CONDITIONS: Final = {
    "chat_id": "chat_id = :chat_id",
    "status": "status = :status",
    "kind": "kind = :kind",
    "user_id": "user_id = :user_id",
    "model": "id IN (SELECT run_id FROM chat_debug_run_models WHERE model = :model)",
    "since": "started_at >= :since",
    "until": "started_at < :until",
    "after": "(started_at < :after_started_at "
    "OR (started_at = :after_started_at AND id < :after_id))",
}


# A model few runs have is looked up first; one many runs have is checked run by run
# while the runs are read newest first (which stops after one page).
MODEL_PROBE: Final = (
    "EXISTS (SELECT 1 FROM chat_debug_run_models AS m "
    "WHERE m.model = :model AND m.run_id = chat_debug_runs.id)"
)
COUNT_MODEL: Final = (
    "SELECT count(*) FROM (SELECT 1 FROM chat_debug_run_models WHERE model = :model LIMIT :cap)"
)


def search_match(term: str) -> str:
    """The FTS5 query of one search word (letters and digits only) as a prefix."""
    return f'"{term}"*'


# The filters a run's index can read, the narrowest first (a chat, a model few runs
# have, a user, a status). SQLite, without statistics, cannot tell them apart: the unary
# + keeps it from reading a broader one's index when a narrower filter is there.
_INDEXED: Final = ("chat_id", "model", "user_id", "status")
_UNINDEXED: Final = {"user_id": "+user_id = :user_id", "status": "+status = :status"}


def _where(conditions: list[str], model_probe: bool) -> list[str]:
    narrowest = next(
        (n for n in _INDEXED if n in conditions and not (n == "model" and model_probe)), None
    )
    parts = []
    for name in conditions:
        if name == "model" and model_probe:
            parts.append(MODEL_PROBE)
        elif name in _UNINDEXED and narrowest is not None and name != narrowest:
            parts.append(_UNINDEXED[name])
        else:
            parts.append(RECENT_RUN_CONDITIONS[name])
    return parts


def recent_runs(conditions: list[str], model_probe: bool = False) -> str:
    """The cross-chat listing with the named :data:`RECENT_RUN_CONDITIONS`
    (``model_probe``: the model's run-by-run form)."""
    where = " AND ".join(_where(conditions, model_probe)) or "1 = 1"
    return (
        f"SELECT {RUN_COLUMNS} FROM chat_debug_runs WHERE {where} "
        "ORDER BY started_at DESC, id DESC LIMIT :limit"
    )


# The step goes in only if its run exists in the same chat and is not finished; the
# number is the requested one, else the next free one (at least :floor).
INSERT_STEP: Final = f"""
INSERT INTO chat_debug_steps (
    id, run_id, chat_id, step_number, operation, status, history_tip_message_id,
    assistant_message_id, normalized_request, normalized_response, usage, attempts, error,
    metadata, started_at, updated_at, finished_at, trace_id, span_id, provider, model,
    request_history_sent
)
SELECT
    :id, r.id, r.chat_id,
    COALESCE(:step_number, MAX(:floor, (
        SELECT COALESCE(MAX(s.step_number), 0) + 1 FROM chat_debug_steps AS s
        WHERE s.run_id = r.id))),
    :operation, :status, :history_tip_message_id, :assistant_message_id,
    :normalized_request, :normalized_response, :usage, :attempts, :error, :metadata,
    :started_at, :updated_at, :finished_at, :trace_id, :span_id, :provider, :model,
    :request_history_sent
FROM chat_debug_runs AS r
WHERE r.id = :run_id AND r.chat_id = :chat_id AND r.finished_at IS NULL
ON CONFLICT (id) DO NOTHING
RETURNING {STEP_COLUMNS}"""
BUMP_RUN: Final = "UPDATE chat_debug_runs SET updated_at = :now WHERE id = :run_id"
RUN_STATE: Final = "SELECT chat_id, finished_at IS NOT NULL FROM chat_debug_runs WHERE id = :run_id"

UPDATE_STEP: Final = f"""
UPDATE chat_debug_steps SET
    {_STATUS_GUARD},
    history_tip_message_id = COALESCE(:history_tip_message_id, history_tip_message_id),
    assistant_message_id = COALESCE(:assistant_message_id, assistant_message_id),
    request_history_sent = CASE WHEN :normalized_request IS NULL THEN request_history_sent
                                ELSE :request_history_sent END,
    normalized_request = COALESCE(:normalized_request, normalized_request),
    normalized_response = COALESCE(:normalized_response, normalized_response),
    usage = COALESCE(:usage, usage),
    attempts = COALESCE(:attempts, attempts),
    error = COALESCE(:error, error),
    metadata = COALESCE(:metadata, metadata),
    provider = COALESCE(:provider, provider),
    model = COALESCE(:model, model),
    finished_at = COALESCE(finished_at, :finished_at),
    updated_at = :now
WHERE id = :id AND chat_id = :chat_id
RETURNING {STEP_COLUMNS}"""

# Run first, then step: the lock order of every writer. Both only when the three ids
# belong together.
TOUCH_STEP_RUN: Final = """
UPDATE chat_debug_runs SET updated_at = :now
WHERE id = :run_id AND chat_id = :chat_id AND EXISTS (
    SELECT 1 FROM chat_debug_steps
    WHERE id = :step_id AND run_id = :run_id AND chat_id = :chat_id)"""
TOUCH_STEP: Final = """
UPDATE chat_debug_steps SET updated_at = :now
WHERE id = :step_id AND run_id = :run_id AND chat_id = :chat_id"""
GET_STEP: Final = f"SELECT {STEP_COLUMNS} FROM chat_debug_steps WHERE id = :id"
_STEPS_OF_RUN: Final = (
    "FROM chat_debug_steps WHERE run_id = :run_id ORDER BY step_number, started_at"
)
LIST_STEPS: Final = f"SELECT {STEP_COLUMNS} {_STEPS_OF_RUN}"
LIST_STEPS_WITHOUT_PAYLOADS: Final = f"SELECT {STEP_COLUMNS_WITHOUT_PAYLOADS} {_STEPS_OF_RUN}"

DELETE_BY_CHAT: Final = (
    "DELETE FROM chat_debug_runs WHERE chat_id = :chat_id AND started_at < :started_before"
)
DELETE_AFTER_MESSAGE: Final = """
DELETE FROM chat_debug_runs
WHERE chat_id = :chat_id AND started_at < :started_before AND (
    history_tip_message_id > :message_id
    OR trigger_message_id > :message_id
    OR EXISTS (
        SELECT 1 FROM chat_debug_steps AS s
        WHERE s.run_id = chat_debug_runs.id AND s.chat_id = chat_debug_runs.chat_id
          AND (s.assistant_message_id > :message_id OR s.history_tip_message_id > :message_id)))"""

# Oldest first, straight off the updated_at index (a tie-breaking column would sort the
# whole backlog on every batch). The ids are read once and passed back as one JSON
# array, so the steps counted are exactly those of the runs deleted.
SELECT_PURGE_BATCH: Final = (
    "SELECT id FROM chat_debug_runs WHERE updated_at < :before ORDER BY updated_at LIMIT :limit"
)
_BATCH_IDS: Final = "SELECT value FROM json_each(:ids)"
COUNT_PURGE_STEPS: Final = f"SELECT count(*) FROM chat_debug_steps WHERE run_id IN ({_BATCH_IDS})"
DELETE_PURGE_RUNS: Final = f"DELETE FROM chat_debug_runs WHERE id IN ({_BATCH_IDS})"

_STALE_RUN: Final = f"finished_at IS NULL AND updated_at < :cutoff AND status NOT IN {_TERMINAL}"
# Steps before runs, so "steps of a run finalized here" can still see those runs open.
FINALIZE_STALE_STEPS: Final = f"""
UPDATE chat_debug_steps SET status = 'interrupted', updated_at = :now, finished_at = :now
WHERE finished_at IS NULL AND status NOT IN {_TERMINAL} AND (
    updated_at < :cutoff
    OR run_id IN (SELECT id FROM chat_debug_runs WHERE {_STALE_RUN}))"""
FINALIZE_STALE_RUNS: Final = f"""
UPDATE chat_debug_runs SET status = 'interrupted', updated_at = :now, finished_at = :now
WHERE {_STALE_RUN}"""

GET_SETTING: Final = "SELECT value FROM chat_debug_settings WHERE key = :key"
SET_SETTING: Final = """
INSERT INTO chat_debug_settings (key, value, updated_at) VALUES (:key, :value, :now)
ON CONFLICT (key) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at"""
GET_USER_ENABLED: Final = (
    "SELECT debug_logging_enabled FROM chat_debug_user_settings WHERE user_id = :user_id"
)
SET_USER_ENABLED: Final = """
INSERT INTO chat_debug_user_settings (user_id, debug_logging_enabled, updated_at)
VALUES (:user_id, :enabled, :now)
ON CONFLICT (user_id) DO UPDATE SET
    debug_logging_enabled = excluded.debug_logging_enabled, updated_at = excluded.updated_at"""

# The bulk write path (see _contract.py): the same statements, reading nothing back; the
# row counts tell whether every write applied.
INSERT_RUN_BULK: Final = INSERT_RUN.rsplit("RETURNING", 1)[0]
INSERT_STEP_BULK: Final = INSERT_STEP.rsplit("RETURNING", 1)[0]
UPDATE_STEP_BULK: Final = UPDATE_STEP.rsplit("RETURNING", 1)[0]
UPDATE_RUN_BULK: Final = UPDATE_RUN.rsplit("RETURNING", 1)[0]
# The steps of several runs at once, without their two large payloads.
LIST_STEPS_OF_RUNS: Final = (
    f"SELECT {STEP_COLUMNS_WITHOUT_PAYLOADS} FROM chat_debug_steps "
    "WHERE run_id IN (SELECT value FROM json_each(:run_ids)) "
    "ORDER BY run_id, step_number, started_at"
)


# Text search (see _sqlite_search.py). A run's millisecond, as the search rowids hold it.
_MILLISECOND: Final = (
    "(CAST(strftime('%s', substr(started_at, 1, 19)) AS INTEGER) * 1000 "
    "+ CAST(substr(started_at, 21, 3) AS INTEGER))"
)
# One word's matching texts, newest run first; the _ONLY form within the milliseconds
# of :only (a JSON array).
SEARCH_WALK: Final = (
    "SELECT rowid FROM chat_debug_search_fts WHERE chat_debug_search_fts MATCH :match "
    "AND rowid >= :lower AND rowid < :upper ORDER BY rowid DESC"
)
SEARCH_WALK_ONLY: Final = (
    "SELECT rowid FROM chat_debug_search_fts WHERE chat_debug_search_fts MATCH :match "
    "AND rowid >= :lower AND rowid < :upper "
    "AND (rowid >> 20) IN (SELECT value FROM json_each(:only)) ORDER BY rowid DESC"
)
WALK_FROM_START: Final = "~"
"""A :walk_upper above every stored time."""


RUNS_BETWEEN: Final = (
    "SELECT count(*) FROM chat_debug_runs WHERE started_at >= :lower AND started_at < :upper"
)


def run_walk(conditions: list[str], model_probe: bool) -> str:
    """(millisecond, id) of the runs with the named conditions started before
    :walk_upper, newest first."""
    where = " AND ".join([*_where(conditions, model_probe), "started_at < :walk_upper"])
    return f"SELECT {_MILLISECOND}, id FROM chat_debug_runs WHERE {where} ORDER BY started_at DESC"


def search_batch(conditions: list[str], words: int, known: bool, model_probe: bool) -> str:
    """The runs that have a text of each word's list (``docs_N``: JSON arrays of text
    rowids), newest first: among ``runs`` (a JSON array of the ids of runs that passed
    the filters) when ``known``, else with the named conditions."""
    parts = [
        f"id IN (SELECT run_id FROM chat_debug_search "
        f"WHERE id IN (SELECT value FROM json_each(:docs_{n})))"
        for n in range(words)
    ]
    if known:
        parts.append("id IN (SELECT value FROM json_each(:runs))")
    else:
        parts += _where(conditions, model_probe)
    return (
        f"SELECT {RUN_COLUMNS} FROM chat_debug_runs WHERE {' AND '.join(parts)} "
        "ORDER BY started_at DESC, id DESC LIMIT :limit"
    )
