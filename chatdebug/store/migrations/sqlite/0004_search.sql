-- Text search and the model filter of the cross-chat listing, maintained by the
-- database on every write (triggers), so no write path can forget them and a search
-- never scans the runs.
--
-- chat_debug_search holds one text per searchable thing: a run's first message (doc =
-- the run id), a step's request messages (doc = '<step id>:request') and its reply
-- (doc = '<step id>:response'). A step's text is the text, tool arguments and tool
-- results of its messages, cut to the last 20,000 characters: an agent repeats its
-- history in every step, so the newest messages come first and earlier ones were
-- indexed by earlier steps. chat_debug_search_fts is its FTS5 index (external content:
-- the text is stored once). Rows go with their run (ON DELETE CASCADE; the cascade
-- fires the delete trigger that keeps the index in step).
--
-- A row's id (the index's rowid) is its run's start time in milliseconds, shifted left
-- by 20 bits, plus a sequence number within that millisecond: the index then lists the
-- matches of a word newest run first, so a search reads only the newest matches it
-- needs rather than every run that has a common word (see the SQLite store).

CREATE TABLE chat_debug_search (
    id     INTEGER PRIMARY KEY,
    doc    TEXT NOT NULL UNIQUE,
    run_id TEXT NOT NULL REFERENCES chat_debug_runs (id) ON DELETE CASCADE,
    body   TEXT NOT NULL
);
CREATE INDEX idx_chat_debug_search_run ON chat_debug_search (run_id);

CREATE VIRTUAL TABLE chat_debug_search_fts USING fts5(
    body, content = 'chat_debug_search', content_rowid = 'id',
    tokenize = 'unicode61 remove_diacritics 0'
);

CREATE TRIGGER chat_debug_search_ai AFTER INSERT ON chat_debug_search BEGIN
    INSERT INTO chat_debug_search_fts (rowid, body) VALUES (new.id, new.body);
END;
CREATE TRIGGER chat_debug_search_ad AFTER DELETE ON chat_debug_search BEGIN
    INSERT INTO chat_debug_search_fts (chat_debug_search_fts, rowid, body)
    VALUES ('delete', old.id, old.body);
END;
CREATE TRIGGER chat_debug_search_au AFTER UPDATE OF body ON chat_debug_search BEGIN
    INSERT INTO chat_debug_search_fts (chat_debug_search_fts, rowid, body)
    VALUES ('delete', old.id, old.body);
    INSERT INTO chat_debug_search_fts (rowid, body) VALUES (new.id, new.body);
END;

-- Every model a run asked for or was answered by: the run's own model, each step's
-- model column (the answering model, else the requested one) and the "model" of each
-- step's request. The model filter matches any of them.
CREATE TABLE chat_debug_run_models (
    model  TEXT NOT NULL,
    run_id TEXT NOT NULL REFERENCES chat_debug_runs (id) ON DELETE CASCADE,
    PRIMARY KEY (model, run_id)
) WITHOUT ROWID;
CREATE INDEX idx_chat_debug_run_models_run ON chat_debug_run_models (run_id);

-- The runs' first messages.
CREATE TRIGGER chat_debug_runs_search_ai AFTER INSERT ON chat_debug_runs
WHEN json_valid(new.summary) AND json_type(new.summary, '$.first_message') = 'text'
BEGIN
    INSERT INTO chat_debug_search (id, doc, run_id, body)
    VALUES (COALESCE((SELECT max(id) + 1 FROM chat_debug_search WHERE id >= ((CAST(strftime('%s', substr(new.started_at, 1, 19)) AS INTEGER) * 1000 + CAST(substr(new.started_at, 21, 3) AS INTEGER)) << 20) AND id < ((CAST(strftime('%s', substr(new.started_at, 1, 19)) AS INTEGER) * 1000 + CAST(substr(new.started_at, 21, 3) AS INTEGER)) << 20) + 1048576), ((CAST(strftime('%s', substr(new.started_at, 1, 19)) AS INTEGER) * 1000 + CAST(substr(new.started_at, 21, 3) AS INTEGER)) << 20)), new.id, new.id,
            json_extract(new.summary, '$.first_message'))
    ON CONFLICT (doc) DO UPDATE SET body = excluded.body;
END;
CREATE TRIGGER chat_debug_runs_search_au AFTER UPDATE OF summary ON chat_debug_runs
WHEN new.summary IS NOT old.summary AND json_valid(new.summary)
    AND json_type(new.summary, '$.first_message') = 'text'
BEGIN
    INSERT INTO chat_debug_search (id, doc, run_id, body)
    VALUES (COALESCE((SELECT max(id) + 1 FROM chat_debug_search WHERE id >= ((CAST(strftime('%s', substr(new.started_at, 1, 19)) AS INTEGER) * 1000 + CAST(substr(new.started_at, 21, 3) AS INTEGER)) << 20) AND id < ((CAST(strftime('%s', substr(new.started_at, 1, 19)) AS INTEGER) * 1000 + CAST(substr(new.started_at, 21, 3) AS INTEGER)) << 20) + 1048576), ((CAST(strftime('%s', substr(new.started_at, 1, 19)) AS INTEGER) * 1000 + CAST(substr(new.started_at, 21, 3) AS INTEGER)) << 20)), new.id, new.id,
            json_extract(new.summary, '$.first_message'))
    ON CONFLICT (doc) DO UPDATE SET body = excluded.body WHERE body IS NOT excluded.body;
END;
CREATE TRIGGER chat_debug_runs_models_ai AFTER INSERT ON chat_debug_runs
WHEN new.model IS NOT NULL
BEGIN
    INSERT OR IGNORE INTO chat_debug_run_models (model, run_id) VALUES (new.model, new.id);
END;
CREATE TRIGGER chat_debug_runs_models_au AFTER UPDATE OF model ON chat_debug_runs
WHEN new.model IS NOT NULL AND new.model IS NOT old.model
BEGIN
    INSERT OR IGNORE INTO chat_debug_run_models (model, run_id) VALUES (new.model, new.id);
END;

-- The steps' messages and replies.
CREATE TRIGGER chat_debug_steps_search_request_ai AFTER INSERT ON chat_debug_steps
WHEN json_valid(new.normalized_request)
BEGIN
    INSERT INTO chat_debug_search (id, doc, run_id, body)
    SELECT COALESCE((SELECT max(id) + 1 FROM chat_debug_search WHERE id >= ((CAST(strftime('%s', substr((SELECT started_at FROM chat_debug_runs WHERE id = new.run_id), 1, 19)) AS INTEGER) * 1000 + CAST(substr((SELECT started_at FROM chat_debug_runs WHERE id = new.run_id), 21, 3) AS INTEGER)) << 20) AND id < ((CAST(strftime('%s', substr((SELECT started_at FROM chat_debug_runs WHERE id = new.run_id), 1, 19)) AS INTEGER) * 1000 + CAST(substr((SELECT started_at FROM chat_debug_runs WHERE id = new.run_id), 21, 3) AS INTEGER)) << 20) + 1048576), ((CAST(strftime('%s', substr((SELECT started_at FROM chat_debug_runs WHERE id = new.run_id), 1, 19)) AS INTEGER) * 1000 + CAST(substr((SELECT started_at FROM chat_debug_runs WHERE id = new.run_id), 21, 3) AS INTEGER)) << 20)),
           new.id || ':request', new.run_id, substr(group_concat(value, ' '), -20000)
    FROM json_tree(new.normalized_request, '$.messages')
    WHERE key IN ('text', 'arguments', 'result') AND type = 'text'
    HAVING count(*) > 0
    ON CONFLICT (doc) DO UPDATE SET body = excluded.body;
    INSERT OR IGNORE INTO chat_debug_run_models (model, run_id)
    SELECT json_extract(new.normalized_request, '$.model'), new.run_id
    WHERE json_type(new.normalized_request, '$.model') = 'text';
END;
CREATE TRIGGER chat_debug_steps_search_request_au AFTER UPDATE OF normalized_request
ON chat_debug_steps
WHEN new.normalized_request IS NOT old.normalized_request AND json_valid(new.normalized_request)
BEGIN
    INSERT INTO chat_debug_search (id, doc, run_id, body)
    SELECT COALESCE((SELECT max(id) + 1 FROM chat_debug_search WHERE id >= ((CAST(strftime('%s', substr((SELECT started_at FROM chat_debug_runs WHERE id = new.run_id), 1, 19)) AS INTEGER) * 1000 + CAST(substr((SELECT started_at FROM chat_debug_runs WHERE id = new.run_id), 21, 3) AS INTEGER)) << 20) AND id < ((CAST(strftime('%s', substr((SELECT started_at FROM chat_debug_runs WHERE id = new.run_id), 1, 19)) AS INTEGER) * 1000 + CAST(substr((SELECT started_at FROM chat_debug_runs WHERE id = new.run_id), 21, 3) AS INTEGER)) << 20) + 1048576), ((CAST(strftime('%s', substr((SELECT started_at FROM chat_debug_runs WHERE id = new.run_id), 1, 19)) AS INTEGER) * 1000 + CAST(substr((SELECT started_at FROM chat_debug_runs WHERE id = new.run_id), 21, 3) AS INTEGER)) << 20)),
           new.id || ':request', new.run_id, substr(group_concat(value, ' '), -20000)
    FROM json_tree(new.normalized_request, '$.messages')
    WHERE key IN ('text', 'arguments', 'result') AND type = 'text'
    HAVING count(*) > 0
    ON CONFLICT (doc) DO UPDATE SET body = excluded.body WHERE body IS NOT excluded.body;
    INSERT OR IGNORE INTO chat_debug_run_models (model, run_id)
    SELECT json_extract(new.normalized_request, '$.model'), new.run_id
    WHERE json_type(new.normalized_request, '$.model') = 'text';
END;
CREATE TRIGGER chat_debug_steps_search_response_ai AFTER INSERT ON chat_debug_steps
WHEN new.normalized_response IS NOT NULL AND json_valid(new.normalized_response)
BEGIN
    INSERT INTO chat_debug_search (id, doc, run_id, body)
    SELECT COALESCE((SELECT max(id) + 1 FROM chat_debug_search WHERE id >= ((CAST(strftime('%s', substr((SELECT started_at FROM chat_debug_runs WHERE id = new.run_id), 1, 19)) AS INTEGER) * 1000 + CAST(substr((SELECT started_at FROM chat_debug_runs WHERE id = new.run_id), 21, 3) AS INTEGER)) << 20) AND id < ((CAST(strftime('%s', substr((SELECT started_at FROM chat_debug_runs WHERE id = new.run_id), 1, 19)) AS INTEGER) * 1000 + CAST(substr((SELECT started_at FROM chat_debug_runs WHERE id = new.run_id), 21, 3) AS INTEGER)) << 20) + 1048576), ((CAST(strftime('%s', substr((SELECT started_at FROM chat_debug_runs WHERE id = new.run_id), 1, 19)) AS INTEGER) * 1000 + CAST(substr((SELECT started_at FROM chat_debug_runs WHERE id = new.run_id), 21, 3) AS INTEGER)) << 20)),
           new.id || ':response', new.run_id, substr(group_concat(value, ' '), -20000)
    FROM json_tree(new.normalized_response, '$.content')
    WHERE key IN ('text', 'arguments', 'result') AND type = 'text'
    HAVING count(*) > 0
    ON CONFLICT (doc) DO UPDATE SET body = excluded.body;
END;
CREATE TRIGGER chat_debug_steps_search_response_au AFTER UPDATE OF normalized_response
ON chat_debug_steps
WHEN new.normalized_response IS NOT old.normalized_response
    AND new.normalized_response IS NOT NULL AND json_valid(new.normalized_response)
BEGIN
    INSERT INTO chat_debug_search (id, doc, run_id, body)
    SELECT COALESCE((SELECT max(id) + 1 FROM chat_debug_search WHERE id >= ((CAST(strftime('%s', substr((SELECT started_at FROM chat_debug_runs WHERE id = new.run_id), 1, 19)) AS INTEGER) * 1000 + CAST(substr((SELECT started_at FROM chat_debug_runs WHERE id = new.run_id), 21, 3) AS INTEGER)) << 20) AND id < ((CAST(strftime('%s', substr((SELECT started_at FROM chat_debug_runs WHERE id = new.run_id), 1, 19)) AS INTEGER) * 1000 + CAST(substr((SELECT started_at FROM chat_debug_runs WHERE id = new.run_id), 21, 3) AS INTEGER)) << 20) + 1048576), ((CAST(strftime('%s', substr((SELECT started_at FROM chat_debug_runs WHERE id = new.run_id), 1, 19)) AS INTEGER) * 1000 + CAST(substr((SELECT started_at FROM chat_debug_runs WHERE id = new.run_id), 21, 3) AS INTEGER)) << 20)),
           new.id || ':response', new.run_id, substr(group_concat(value, ' '), -20000)
    FROM json_tree(new.normalized_response, '$.content')
    WHERE key IN ('text', 'arguments', 'result') AND type = 'text'
    HAVING count(*) > 0
    ON CONFLICT (doc) DO UPDATE SET body = excluded.body WHERE body IS NOT excluded.body;
END;
CREATE TRIGGER chat_debug_steps_models_ai AFTER INSERT ON chat_debug_steps
WHEN new.model IS NOT NULL
BEGIN
    INSERT OR IGNORE INTO chat_debug_run_models (model, run_id) VALUES (new.model, new.run_id);
END;
CREATE TRIGGER chat_debug_steps_models_au AFTER UPDATE OF model ON chat_debug_steps
WHEN new.model IS NOT NULL AND new.model IS NOT old.model
BEGIN
    INSERT OR IGNORE INTO chat_debug_run_models (model, run_id) VALUES (new.model, new.run_id);
END;

-- What was recorded before this version (numbered within each millisecond here: one
-- statement does not see its own rows).
INSERT INTO chat_debug_search (id, doc, run_id, body)
SELECT key + row_number() OVER (PARTITION BY key ORDER BY run_id, doc) - 1, doc, run_id, body
FROM (
    SELECT ((CAST(strftime('%s', substr(started_at, 1, 19)) AS INTEGER) * 1000 + CAST(substr(started_at, 21, 3) AS INTEGER)) << 20) AS key, doc, run_id, body FROM (
        SELECT r.started_at, r.id AS doc, r.id AS run_id,
               json_extract(r.summary, '$.first_message') AS body
        FROM chat_debug_runs AS r
        WHERE json_valid(r.summary) AND json_type(r.summary, '$.first_message') = 'text'
        UNION ALL
        SELECT r.started_at, s.id || ':request', s.run_id, (
            SELECT substr(group_concat(t.value, ' '), -20000)
            FROM json_tree(s.normalized_request, '$.messages') AS t
            WHERE t.key IN ('text', 'arguments', 'result') AND t.type = 'text')
        FROM chat_debug_steps AS s JOIN chat_debug_runs AS r ON r.id = s.run_id
        WHERE json_valid(s.normalized_request)
        UNION ALL
        SELECT r.started_at, s.id || ':response', s.run_id, (
            SELECT substr(group_concat(t.value, ' '), -20000)
            FROM json_tree(s.normalized_response, '$.content') AS t
            WHERE t.key IN ('text', 'arguments', 'result') AND t.type = 'text')
        FROM chat_debug_steps AS s JOIN chat_debug_runs AS r ON r.id = s.run_id
        WHERE s.normalized_response IS NOT NULL AND json_valid(s.normalized_response)
    )
    WHERE body IS NOT NULL
);
INSERT OR IGNORE INTO chat_debug_run_models (model, run_id)
SELECT model, id FROM chat_debug_runs WHERE model IS NOT NULL;
INSERT OR IGNORE INTO chat_debug_run_models (model, run_id)
SELECT model, run_id FROM chat_debug_steps WHERE model IS NOT NULL;
INSERT OR IGNORE INTO chat_debug_run_models (model, run_id)
SELECT json_extract(normalized_request, '$.model'), run_id FROM chat_debug_steps
WHERE json_valid(normalized_request) AND json_type(normalized_request, '$.model') = 'text';
