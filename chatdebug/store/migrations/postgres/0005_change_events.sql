-- Change events: every statement that writes runs or steps sends NOTIFY on one channel
-- per schema ('chatdebug_' || md5(schema name)), from statement-level triggers, so the
-- notifications are part of the writing transaction and are delivered when it commits
-- (never for a rollback), to every process listening on that database: every
-- `chatdebug serve` replica and every `chatdebug tail`. A payload is a JSON object with
-- ids and statuses only, never payloads, one per run changed by the statement (the
-- step numbers it changed in that run), one per chat for deletions (at most 100 run
-- ids each), always well under PostgreSQL's 8,000-byte limit. Identical notifications
-- of one transaction are delivered once (PostgreSQL folds them).

CREATE FUNCTION chat_debug_channel(schema_name text) RETURNS text
LANGUAGE sql IMMUTABLE AS $$ SELECT 'chatdebug_' || md5(schema_name) $$;

-- The payload, or a smaller one when it would not fit: without the step numbers
-- ("many changed", the reader fetches the run), then with the run id only (the reader
-- looks the rest up).
CREATE FUNCTION chat_debug_change_payload(payload jsonb) RETURNS text
LANGUAGE plpgsql IMMUTABLE AS $$
DECLARE
    text_payload text := payload::text;
BEGIN
    IF octet_length(text_payload) <= 7000 THEN
        RETURN text_payload;
    END IF;
    text_payload := (payload - 'step_numbers' - 'run_ids')::text;
    IF octet_length(text_payload) <= 7000 THEN
        RETURN text_payload;
    END IF;
    RETURN jsonb_build_object(
        'kind', payload->'kind', 'run_id', payload->'run_id', 'oversize', true)::text;
END $$;

CREATE FUNCTION chat_debug_publish_runs() RETURNS trigger
LANGUAGE plpgsql SET search_path FROM CURRENT AS $$
DECLARE
    channel text := chat_debug_channel(TG_TABLE_SCHEMA);
    item record;
BEGIN
    IF TG_OP = 'DELETE' THEN
        FOR item IN
            SELECT chat_id, jsonb_agg(id ORDER BY id) AS run_ids
            FROM (SELECT chat_id, id,
                         (row_number() OVER (PARTITION BY chat_id ORDER BY id) - 1) / 100 AS part
                  FROM old_runs) AS numbered
            GROUP BY chat_id, part
        LOOP
            PERFORM pg_notify(channel, chat_debug_change_payload(jsonb_build_object(
                'kind', 'delete', 'chat_id', item.chat_id, 'run_ids', item.run_ids)));
        END LOOP;
    ELSE
        FOR item IN SELECT id, chat_id, status, user_id, kind, model FROM new_runs LOOP
            PERFORM pg_notify(channel, chat_debug_change_payload(jsonb_build_object(
                'kind', 'run_update', 'chat_id', item.chat_id, 'run_id', item.id,
                'status', item.status, 'user_id', item.user_id, 'run_kind', item.kind,
                'model', item.model, 'step_numbers', '[]'::jsonb)));
        END LOOP;
    END IF;
    RETURN NULL;
END $$;

CREATE FUNCTION chat_debug_publish_steps() RETURNS trigger
LANGUAGE plpgsql SET search_path FROM CURRENT AS $$
DECLARE
    channel text := chat_debug_channel(TG_TABLE_SCHEMA);
    item record;
BEGIN
    FOR item IN
        SELECT s.run_id, s.chat_id, r.status, r.user_id, r.kind, r.model,
               jsonb_agg(DISTINCT s.step_number) AS step_numbers
        FROM new_steps AS s LEFT JOIN chat_debug_runs AS r ON r.id = s.run_id
        GROUP BY s.run_id, s.chat_id, r.status, r.user_id, r.kind, r.model
    LOOP
        PERFORM pg_notify(channel, chat_debug_change_payload(jsonb_build_object(
            'kind', 'run_update', 'chat_id', item.chat_id, 'run_id', item.run_id,
            'status', item.status, 'user_id', item.user_id, 'run_kind', item.kind,
            'model', item.model, 'step_numbers', item.step_numbers)));
    END LOOP;
    RETURN NULL;
END $$;

-- A trigger with transition tables has one event each.
CREATE TRIGGER chat_debug_changes_run_insert AFTER INSERT ON chat_debug_runs
    REFERENCING NEW TABLE AS new_runs
    FOR EACH STATEMENT EXECUTE FUNCTION chat_debug_publish_runs();
CREATE TRIGGER chat_debug_changes_run_update AFTER UPDATE ON chat_debug_runs
    REFERENCING NEW TABLE AS new_runs
    FOR EACH STATEMENT EXECUTE FUNCTION chat_debug_publish_runs();
CREATE TRIGGER chat_debug_changes_run_delete AFTER DELETE ON chat_debug_runs
    REFERENCING OLD TABLE AS old_runs
    FOR EACH STATEMENT EXECUTE FUNCTION chat_debug_publish_runs();
CREATE TRIGGER chat_debug_changes_step_insert AFTER INSERT ON chat_debug_steps
    REFERENCING NEW TABLE AS new_steps
    FOR EACH STATEMENT EXECUTE FUNCTION chat_debug_publish_steps();
CREATE TRIGGER chat_debug_changes_step_update AFTER UPDATE ON chat_debug_steps
    REFERENCING NEW TABLE AS new_steps
    FOR EACH STATEMENT EXECUTE FUNCTION chat_debug_publish_steps();

-- What the stale finalizer and the retention purge publish besides the rows they
-- change: their counts, in the same transaction.
CREATE FUNCTION chat_debug_publish_summary(kind text, counts jsonb) RETURNS void
LANGUAGE sql SET search_path FROM CURRENT AS $$
    SELECT pg_notify(chat_debug_channel(current_schema()),
                     jsonb_build_object('kind', kind, 'counts', counts)::text)
$$;
