-- A step's request is indexed from the first message its run's previous step had not
-- sent. An agent sends its whole history with every call, and each step's request used
-- to be indexed whole (its last 20,000 characters): the same history tokenized again at
-- every step, about a millisecond of the writer's time per step once the history is
-- 20,000 characters long, where the new messages are a few hundred characters. The run
-- still holds every word it held: the messages left out are in its earlier steps' texts.
--
-- request_history_sent: how many leading messages of the step's request are the last
-- messages of the request of the step its run opened before it (the instrumentation
-- compares them when it opens the step; NULL or 0 when they are not, as for a run's
-- first step or a history that was rewritten). A history kept to a sliding window still
-- continues the previous step's. The reply, the first message and the models are
-- indexed as before.

ALTER TABLE chat_debug_steps ADD COLUMN request_history_sent INTEGER;

DROP TRIGGER chat_debug_steps_search_request_ai;
DROP TRIGGER chat_debug_steps_search_request_au;

CREATE TRIGGER chat_debug_steps_search_request_ai AFTER INSERT ON chat_debug_steps
WHEN json_valid(new.normalized_request)
BEGIN
    INSERT INTO chat_debug_search (id, doc, run_id, body)
    SELECT COALESCE((SELECT max(id) + 1 FROM chat_debug_search WHERE id >= ((CAST(strftime('%s', substr((SELECT started_at FROM chat_debug_runs WHERE id = new.run_id), 1, 19)) AS INTEGER) * 1000 + CAST(substr((SELECT started_at FROM chat_debug_runs WHERE id = new.run_id), 21, 3) AS INTEGER)) << 20) AND id < ((CAST(strftime('%s', substr((SELECT started_at FROM chat_debug_runs WHERE id = new.run_id), 1, 19)) AS INTEGER) * 1000 + CAST(substr((SELECT started_at FROM chat_debug_runs WHERE id = new.run_id), 21, 3) AS INTEGER)) << 20) + 1048576), ((CAST(strftime('%s', substr((SELECT started_at FROM chat_debug_runs WHERE id = new.run_id), 1, 19)) AS INTEGER) * 1000 + CAST(substr((SELECT started_at FROM chat_debug_runs WHERE id = new.run_id), 21, 3) AS INTEGER)) << 20)),
           new.id || ':request', new.run_id, substr(group_concat(value, ' '), -20000)
    FROM json_tree(new.normalized_request, '$.messages')
    WHERE key IN ('text', 'arguments', 'result') AND type = 'text'
      AND (fullkey NOT LIKE '$.messages[%'
           OR CAST(substr(fullkey, 12) AS INTEGER) >= COALESCE(new.request_history_sent, 0))
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
      AND (fullkey NOT LIKE '$.messages[%'
           OR CAST(substr(fullkey, 12) AS INTEGER) >= COALESCE(new.request_history_sent, 0))
    HAVING count(*) > 0
    ON CONFLICT (doc) DO UPDATE SET body = excluded.body WHERE body IS NOT excluded.body;
    INSERT OR IGNORE INTO chat_debug_run_models (model, run_id)
    SELECT json_extract(new.normalized_request, '$.model'), new.run_id
    WHERE json_type(new.normalized_request, '$.model') = 'text';
END;
