-- Change events: every write to a run or a step leaves a small row in
-- chat_debug_changes, in the same transaction as the write, so that watchers in any
-- process (`chatdebug serve`, `chatdebug tail`) learn what changed by reading the rows
-- after the last one they saw. The rows carry ids and statuses only, never payloads.
-- A watcher polls `PRAGMA data_version` (which moves when another connection commits)
-- and reads the new rows only then. The ring keeps the last 50,000 rows: a watcher
-- further behind than that starts over from a fresh read of the runs.
--
-- kind: 'run' (a run row was written), 'step' (a step row was written; status is then
-- the run's), 'delete' (a run was deleted), 'finalize' and 'purge' (counts of the stale
-- finalizer and the retention purge, in `counts` as JSON).

CREATE TABLE chat_debug_changes (
    seq         INTEGER PRIMARY KEY,
    kind        TEXT    NOT NULL,
    chat_id     TEXT,
    run_id      TEXT,
    status      TEXT,
    step_number INTEGER,
    user_id     TEXT,
    run_kind    TEXT,
    model       TEXT,
    counts      TEXT
);

CREATE TRIGGER chat_debug_changes_run_insert AFTER INSERT ON chat_debug_runs
BEGIN
    INSERT INTO chat_debug_changes (kind, chat_id, run_id, status, user_id, run_kind, model)
    VALUES ('run', NEW.chat_id, NEW.id, NEW.status, NEW.user_id, NEW.kind, NEW.model);
END;

CREATE TRIGGER chat_debug_changes_run_update AFTER UPDATE ON chat_debug_runs
BEGIN
    INSERT INTO chat_debug_changes (kind, chat_id, run_id, status, user_id, run_kind, model)
    VALUES ('run', NEW.chat_id, NEW.id, NEW.status, NEW.user_id, NEW.kind, NEW.model);
END;

CREATE TRIGGER chat_debug_changes_run_delete AFTER DELETE ON chat_debug_runs
BEGIN
    INSERT INTO chat_debug_changes (kind, chat_id, run_id, status, user_id, run_kind, model)
    VALUES ('delete', OLD.chat_id, OLD.id, OLD.status, OLD.user_id, OLD.kind, OLD.model);
END;

CREATE TRIGGER chat_debug_changes_step_insert AFTER INSERT ON chat_debug_steps
BEGIN
    INSERT INTO chat_debug_changes
        (kind, chat_id, run_id, status, step_number, user_id, run_kind, model)
    SELECT 'step', NEW.chat_id, NEW.run_id, r.status, NEW.step_number, r.user_id, r.kind, r.model
    FROM chat_debug_runs AS r WHERE r.id = NEW.run_id;
END;

CREATE TRIGGER chat_debug_changes_step_update AFTER UPDATE ON chat_debug_steps
BEGIN
    INSERT INTO chat_debug_changes
        (kind, chat_id, run_id, status, step_number, user_id, run_kind, model)
    SELECT 'step', NEW.chat_id, NEW.run_id, r.status, NEW.step_number, r.user_id, r.kind, r.model
    FROM chat_debug_runs AS r WHERE r.id = NEW.run_id;
END;

-- Trimmed a thousand rows at a time, so that a write pays for it once in a thousand.
CREATE TRIGGER chat_debug_changes_trim AFTER INSERT ON chat_debug_changes
WHEN NEW.seq % 1000 = 0
BEGIN
    DELETE FROM chat_debug_changes WHERE seq <= NEW.seq - 50000;
END;
