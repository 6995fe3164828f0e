-- Debug runs and their steps (one step per model call).
--
-- Representation: UUIDs are lowercase hyphenated text; JSON is text; timestamps are
-- fixed-width UTC ISO-8601 text with microseconds ('2024-05-01T12:00:00.000000Z'), so
-- comparing and ordering them as text in SQL is comparing and ordering them in time.
-- chat_id, user_id and the *_chat_id / model_config_id snapshots reference nothing:
-- chatdebug has no chats table.

CREATE TABLE chat_debug_runs (
    id                     TEXT    PRIMARY KEY NOT NULL DEFAULT (lower(
        hex(randomblob(4)) || '-' || hex(randomblob(2)) || '-4' ||
        substr(hex(randomblob(2)), 2) || '-' || substr('89ab', 1 + (abs(random()) % 4), 1) ||
        substr(hex(randomblob(2)), 2) || '-' || hex(randomblob(6)))),
    chat_id                TEXT    NOT NULL,
    user_id                TEXT,
    root_chat_id           TEXT,
    parent_chat_id         TEXT,
    model_config_id        TEXT,
    trigger_message_id     INTEGER,
    history_tip_message_id INTEGER,
    kind                   TEXT    NOT NULL,
    status                 TEXT    NOT NULL,
    provider               TEXT,
    model                  TEXT,
    summary                TEXT    NOT NULL DEFAULT '{}',
    started_at             TEXT    NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%f', 'now') || '000Z'),
    updated_at             TEXT    NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%f', 'now') || '000Z'),
    finished_at            TEXT,
    trace_id               TEXT,
    span_id                TEXT
);

-- Target of the steps' composite foreign key: a step's chat must be its run's chat.
CREATE UNIQUE INDEX idx_chat_debug_runs_id_chat ON chat_debug_runs (id, chat_id);
-- Runs of a chat, newest first.
CREATE INDEX idx_chat_debug_runs_chat_started ON chat_debug_runs (chat_id, started_at DESC);
-- Stale finalization looks only at unfinished runs.
CREATE INDEX idx_chat_debug_runs_stale ON chat_debug_runs (updated_at) WHERE finished_at IS NULL;
-- The retention purge deletes by updated_at, finished or not.
CREATE INDEX idx_chat_debug_runs_updated_at ON chat_debug_runs (updated_at);

CREATE TABLE chat_debug_steps (
    id                     TEXT    PRIMARY KEY NOT NULL DEFAULT (lower(
        hex(randomblob(4)) || '-' || hex(randomblob(2)) || '-4' ||
        substr(hex(randomblob(2)), 2) || '-' || substr('89ab', 1 + (abs(random()) % 4), 1) ||
        substr(hex(randomblob(2)), 2) || '-' || hex(randomblob(6)))),
    run_id                 TEXT    NOT NULL,
    chat_id                TEXT    NOT NULL,
    step_number            INTEGER NOT NULL,
    operation              TEXT    NOT NULL,
    status                 TEXT    NOT NULL,
    history_tip_message_id INTEGER,
    assistant_message_id   INTEGER,
    normalized_request     TEXT    NOT NULL DEFAULT '{}',
    normalized_response    TEXT,
    usage                  TEXT,
    attempts               TEXT    NOT NULL DEFAULT '[]',
    error                  TEXT,
    metadata               TEXT    NOT NULL DEFAULT '{}',
    started_at             TEXT    NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%f', 'now') || '000Z'),
    updated_at             TEXT    NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%f', 'now') || '000Z'),
    finished_at            TEXT,
    trace_id               TEXT,
    span_id                TEXT,
    CONSTRAINT fk_chat_debug_steps_run_chat FOREIGN KEY (run_id, chat_id)
        REFERENCES chat_debug_runs (id, chat_id) ON DELETE CASCADE
);

-- Step numbers are unique per run; a violation tells a writer to pick the next number.
-- Its leading run_id also serves the cascade from chat_debug_runs.
CREATE UNIQUE INDEX idx_chat_debug_steps_run_step ON chat_debug_steps (run_id, step_number);
-- "Delete after message" looks up steps by chat and message ids.
CREATE INDEX idx_chat_debug_steps_chat_tip ON chat_debug_steps (chat_id, history_tip_message_id);
CREATE INDEX idx_chat_debug_steps_chat_assistant_msg ON chat_debug_steps (chat_id, assistant_message_id)
    WHERE assistant_message_id IS NOT NULL;
CREATE INDEX idx_chat_debug_steps_stale ON chat_debug_steps (updated_at) WHERE finished_at IS NULL;
