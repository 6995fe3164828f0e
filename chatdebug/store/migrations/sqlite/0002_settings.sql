-- Enablement and retention settings kept with the data, so every process that shares the
-- database (the application, `chatdebug serve`, the CLI) sees the same values.

-- Site-wide key/value settings: 'allow_users' ('true'/'false'), 'retention_days' (integer).
CREATE TABLE chat_debug_settings (
    key        TEXT PRIMARY KEY NOT NULL,
    value      TEXT NOT NULL,
    updated_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%f', 'now') || '000Z')
);

-- Per-user opt-in; a user without a row has not opted in. 0/1 for false/true.
CREATE TABLE chat_debug_user_settings (
    user_id               TEXT    PRIMARY KEY NOT NULL,
    debug_logging_enabled INTEGER NOT NULL CHECK (debug_logging_enabled IN (0, 1)),
    updated_at            TEXT    NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%f', 'now') || '000Z')
);
