-- The search index and the model list (0004) maintained once per statement instead of
-- once per row: the same documents and models, now computed over the statement's
-- transition tables, so a statement that writes hundreds of rows (the bulk path
-- writing a backlog) indexes them in one pass rather than hundreds of trigger calls.
-- An update indexes what changed against the row as it was: a run's first message
-- when it changed (not on every change of the summary), a step's request or reply
-- when it changed, a model when it is new. A trigger with transition tables cannot name columns, so the
-- update triggers run for every update of a run or a step and find nothing to do for
-- an update that changed none of these.

DROP TRIGGER chat_debug_runs_index ON chat_debug_runs;
DROP TRIGGER chat_debug_steps_index ON chat_debug_steps;
DROP FUNCTION chat_debug_runs_index();
DROP FUNCTION chat_debug_steps_index();

CREATE FUNCTION chat_debug_index_new_runs() RETURNS TRIGGER LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO chat_debug_search (doc, run_id, document)
    SELECT n.id::text, n.id, chat_debug_search_vector(n.summary ->> 'first_message')
    FROM new_runs AS n
    WHERE jsonb_typeof(n.summary -> 'first_message') = 'string'
      AND n.summary ->> 'first_message' <> ''
    ON CONFLICT (doc) DO UPDATE SET document = excluded.document;
    INSERT INTO chat_debug_run_models (model, run_id)
    SELECT n.model, n.id FROM new_runs AS n WHERE n.model IS NOT NULL
    ON CONFLICT DO NOTHING;
    RETURN NULL;
END $$;

CREATE FUNCTION chat_debug_index_changed_runs() RETURNS TRIGGER LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO chat_debug_search (doc, run_id, document)
    SELECT n.id::text, n.id, chat_debug_search_vector(n.summary ->> 'first_message')
    FROM new_runs AS n JOIN old_runs AS o ON o.id = n.id
    WHERE n.summary -> 'first_message' IS DISTINCT FROM o.summary -> 'first_message'
      AND jsonb_typeof(n.summary -> 'first_message') = 'string'
      AND n.summary ->> 'first_message' <> ''
    ON CONFLICT (doc) DO UPDATE SET document = excluded.document;
    INSERT INTO chat_debug_run_models (model, run_id)
    SELECT n.model, n.id FROM new_runs AS n JOIN old_runs AS o ON o.id = n.id
    WHERE n.model IS NOT NULL AND n.model IS DISTINCT FROM o.model
    ON CONFLICT DO NOTHING;
    RETURN NULL;
END $$;

CREATE FUNCTION chat_debug_index_new_steps() RETURNS TRIGGER LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO chat_debug_search (doc, run_id, document)
    SELECT d.doc, d.run_id, chat_debug_search_vector(d.body)
    FROM (
        SELECT n.id::text || ':request' AS doc, n.run_id,
               chat_debug_search_text(n.normalized_request, 'lax $.messages[*].parts[*]') AS body
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

CREATE FUNCTION chat_debug_index_changed_steps() RETURNS TRIGGER LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO chat_debug_search (doc, run_id, document)
    SELECT d.doc, d.run_id, chat_debug_search_vector(d.body)
    FROM (
        SELECT n.id::text || ':request' AS doc, n.run_id,
               chat_debug_search_text(n.normalized_request, 'lax $.messages[*].parts[*]') AS body
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

CREATE TRIGGER chat_debug_index_run_insert AFTER INSERT ON chat_debug_runs
    REFERENCING NEW TABLE AS new_runs
    FOR EACH STATEMENT EXECUTE FUNCTION chat_debug_index_new_runs();
CREATE TRIGGER chat_debug_index_run_update AFTER UPDATE ON chat_debug_runs
    REFERENCING OLD TABLE AS old_runs NEW TABLE AS new_runs
    FOR EACH STATEMENT EXECUTE FUNCTION chat_debug_index_changed_runs();
CREATE TRIGGER chat_debug_index_step_insert AFTER INSERT ON chat_debug_steps
    REFERENCING NEW TABLE AS new_steps
    FOR EACH STATEMENT EXECUTE FUNCTION chat_debug_index_new_steps();
CREATE TRIGGER chat_debug_index_step_update AFTER UPDATE ON chat_debug_steps
    REFERENCING OLD TABLE AS old_steps NEW TABLE AS new_steps
    FOR EACH STATEMENT EXECUTE FUNCTION chat_debug_index_changed_steps();
