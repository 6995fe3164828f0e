-- A step's request is indexed from the first message its run's previous step had not
-- sent. An agent sends its whole history with every call, and each step's request used
-- to be indexed whole: the same history turned into words again at every step, where
-- the new messages are a few hundred characters. The run still holds every word it
-- held: the messages left out are in its earlier steps' texts.
--
-- request_history_sent: how many leading messages of the step's request are the last
-- messages of the request of the step its run opened before it (the instrumentation
-- compares them when it opens the step; NULL or 0 when they are not, as for a run's
-- first step or a history that was rewritten). A history kept to a sliding window still
-- continues the previous step's. The reply, the first message and the models are
-- indexed as before.

ALTER TABLE chat_debug_steps ADD COLUMN request_history_sent INTEGER;

-- The text, tool arguments and tool results of a request's messages from message
-- `sent` (0-based) on.
CREATE FUNCTION chat_debug_request_text(payload JSONB, sent INTEGER) RETURNS TEXT
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT chat_debug_search_text(payload, 'lax $.messages[*].parts[*]')
    WHERE COALESCE(sent, 0) <= 0
    UNION ALL
    SELECT string_agg(item #>> '{}', ' ')
    FROM jsonb_array_elements(
             CASE WHEN jsonb_typeof(payload -> 'messages') = 'array'
                  THEN payload -> 'messages' ELSE '[]'::jsonb END
         ) WITH ORDINALITY AS message (value, position),
         LATERAL jsonb_path_query(message.value, 'lax $.parts[*]') AS part,
         LATERAL (SELECT value AS item FROM jsonb_each(
             CASE WHEN jsonb_typeof(part) = 'object' THEN part ELSE '{}'::jsonb END)
             WHERE key IN ('text', 'arguments', 'result') AND jsonb_typeof(value) = 'string'
         ) AS fields
    WHERE sent > 0 AND message.position > sent
    HAVING count(*) > 0
$$;

CREATE OR REPLACE FUNCTION chat_debug_index_new_steps() RETURNS TRIGGER LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO chat_debug_search (doc, run_id, document)
    SELECT d.doc, d.run_id, chat_debug_search_vector(d.body)
    FROM (
        SELECT n.id::text || ':request' AS doc, n.run_id,
               chat_debug_request_text(n.normalized_request, n.request_history_sent) AS body
        FROM new_steps AS n
        UNION ALL
        SELECT n.id::text || ':response', n.run_id,
               chat_debug_search_text(n.normalized_response, 'lax $.content[*]')
        FROM new_steps AS n WHERE n.normalized_response IS NOT NULL
    ) AS d
    WHERE d.body IS NOT NULL AND d.body <> ''
    ON CONFLICT (doc) DO UPDATE SET document = excluded.document;
    INSERT INTO chat_debug_run_models (model, run_id)
    SELECT n.normalized_request ->> 'model', n.run_id FROM new_steps AS n
    WHERE jsonb_typeof(n.normalized_request -> 'model') = 'string'
    UNION
    SELECT n.model, n.run_id FROM new_steps AS n WHERE n.model IS NOT NULL
    ON CONFLICT DO NOTHING;
    RETURN NULL;
END $$;

CREATE OR REPLACE FUNCTION chat_debug_index_changed_steps() RETURNS TRIGGER LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO chat_debug_search (doc, run_id, document)
    SELECT d.doc, d.run_id, chat_debug_search_vector(d.body)
    FROM (
        SELECT n.id::text || ':request' AS doc, n.run_id,
               chat_debug_request_text(n.normalized_request, n.request_history_sent) AS body
        FROM new_steps AS n JOIN old_steps AS o ON o.id = n.id
        WHERE n.normalized_request IS DISTINCT FROM o.normalized_request
        UNION ALL
        SELECT n.id::text || ':response', n.run_id,
               chat_debug_search_text(n.normalized_response, 'lax $.content[*]')
        FROM new_steps AS n JOIN old_steps AS o ON o.id = n.id
        WHERE n.normalized_response IS NOT NULL
          AND n.normalized_response IS DISTINCT FROM o.normalized_response
    ) AS d
    WHERE d.body IS NOT NULL AND d.body <> ''
    ON CONFLICT (doc) DO UPDATE SET document = excluded.document;
    INSERT INTO chat_debug_run_models (model, run_id)
    SELECT n.normalized_request ->> 'model', n.run_id
    FROM new_steps AS n JOIN old_steps AS o ON o.id = n.id
    WHERE n.normalized_request IS DISTINCT FROM o.normalized_request
      AND jsonb_typeof(n.normalized_request -> 'model') = 'string'
    UNION
    SELECT n.model, n.run_id FROM new_steps AS n JOIN old_steps AS o ON o.id = n.id
    WHERE n.model IS NOT NULL AND n.model IS DISTINCT FROM o.model
    ON CONFLICT DO NOTHING;
    RETURN NULL;
END $$;
