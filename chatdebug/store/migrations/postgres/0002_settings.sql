-- Enablement and retention settings kept with the data, so every process that shares the
-- database (the application, `chatdebug serve`, the CLI) sees the same values.

-- Site-wide key/value settings: 'allow_users' ('true'/'false'), 'retention_days' (integer).
CREATE TABLE chat_debug_settings (
    key        TEXT        PRIMARY KEY,
    value      TEXT        NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL DEFAULT NOW()
);

-- Per-user opt-in; a user without a row has not opted in.
CREATE TABLE chat_debug_user_settings (
    user_id               TEXT        PRIMARY KEY,
    debug_logging_enabled BOOLEAN     NOT NULL,
    updated_at            TIMESTAMPTZ NOT NULL DEFAULT NOW()
);
