-- Text search and the model filter of the cross-chat listing, maintained by the
-- database on every write (triggers), so no write path can forget them and a search
-- never scans the runs.
--
-- chat_debug_search holds one document per searchable thing: a run's first message
-- (doc = the run id), a step's request messages (doc = '<step id>:request') and its
-- reply (doc = '<step id>:response'), as a tsvector of the 'simple' configuration (no
-- stemming, no stop words: a debugger looks for the words that were sent) under a GIN
-- index. A step's text is the text, tool arguments and tool results of its messages,
-- cut to the last 20,000 characters: an agent repeats its history in every step, so
-- the newest messages come first and earlier ones were indexed by earlier steps. ASCII
-- punctuation separates words, as in the SQLite store. Rows go with their run.

CREATE TABLE chat_debug_search (
    doc      TEXT     PRIMARY KEY,
    run_id   UUID     NOT NULL REFERENCES chat_debug_runs (id) ON DELETE CASCADE,
    document TSVECTOR NOT NULL
);
CREATE INDEX idx_chat_debug_search_run ON chat_debug_search (run_id);
CREATE INDEX idx_chat_debug_search_document ON chat_debug_search USING GIN (document);

-- Every model a run asked for or was answered by: the run's own model, each step's
-- model column (the answering model, else the requested one) and the "model" of each
-- step's request. The model filter matches any of them.
CREATE TABLE chat_debug_run_models (
    model  TEXT NOT NULL,
    run_id UUID NOT NULL REFERENCES chat_debug_runs (id) ON DELETE CASCADE,
    PRIMARY KEY (model, run_id)
);
CREATE INDEX idx_chat_debug_run_models_run ON chat_debug_run_models (run_id);

CREATE FUNCTION chat_debug_search_vector(body TEXT) RETURNS TSVECTOR
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT to_tsvector('simple'::regconfig,
                       regexp_replace(right(body, 20000), '[[:punct:]]+', ' ', 'g'))
$$;

-- The text, tool arguments and tool results under the array at `items` of a payload.
CREATE FUNCTION chat_debug_search_text(payload JSONB, items JSONPATH) RETURNS TEXT
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT string_agg(item #>> '{}', ' ')
    FROM jsonb_path_query(payload, items) AS part,
         LATERAL (SELECT value AS item FROM jsonb_each(
             CASE WHEN jsonb_typeof(part) = 'object' THEN part ELSE '{}'::jsonb END)
             WHERE key IN ('text', 'arguments', 'result') AND jsonb_typeof(value) = 'string'
         ) AS fields
$$;

CREATE FUNCTION chat_debug_search_put(doc_key TEXT, run UUID, body TEXT) RETURNS VOID
LANGUAGE sql AS $$
    INSERT INTO chat_debug_search (doc, run_id, document)
    SELECT doc_key, run, chat_debug_search_vector(body) WHERE body IS NOT NULL AND body <> ''
    ON CONFLICT (doc) DO UPDATE SET document = excluded.document
$$;

CREATE FUNCTION chat_debug_runs_index() RETURNS TRIGGER LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' OR NEW.summary IS DISTINCT FROM OLD.summary THEN
        IF jsonb_typeof(NEW.summary -> 'first_message') = 'string' THEN
            PERFORM chat_debug_search_put(NEW.id::text, NEW.id, NEW.summary ->> 'first_message');
        END IF;
    END IF;
    IF NEW.model IS NOT NULL AND (TG_OP = 'INSERT' OR NEW.model IS DISTINCT FROM OLD.model) THEN
        INSERT INTO chat_debug_run_models (model, run_id) VALUES (NEW.model, NEW.id)
        ON CONFLICT DO NOTHING;
    END IF;
    RETURN NULL;
END
$$;

CREATE FUNCTION chat_debug_steps_index() RETURNS TRIGGER LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' OR NEW.normalized_request IS DISTINCT FROM OLD.normalized_request THEN
        PERFORM chat_debug_search_put(
            NEW.id::text || ':request', NEW.run_id,
            chat_debug_search_text(NEW.normalized_request, 'lax $.messages[*].parts[*]'));
        IF jsonb_typeof(NEW.normalized_request -> 'model') = 'string' THEN
            INSERT INTO chat_debug_run_models (model, run_id)
            VALUES (NEW.normalized_request ->> 'model', NEW.run_id) ON CONFLICT DO NOTHING;
        END IF;
    END IF;
    IF NEW.normalized_response IS NOT NULL AND (
        TG_OP = 'INSERT' OR NEW.normalized_response IS DISTINCT FROM OLD.normalized_response
    ) THEN
        PERFORM chat_debug_search_put(
            NEW.id::text || ':response', NEW.run_id,
            chat_debug_search_text(NEW.normalized_response, 'lax $.content[*]'));
    END IF;
    IF NEW.model IS NOT NULL AND (TG_OP = 'INSERT' OR NEW.model IS DISTINCT FROM OLD.model) THEN
        INSERT INTO chat_debug_run_models (model, run_id) VALUES (NEW.model, NEW.run_id)
        ON CONFLICT DO NOTHING;
    END IF;
    RETURN NULL;
END
$$;

CREATE TRIGGER chat_debug_runs_index AFTER INSERT OR UPDATE OF summary, model
ON chat_debug_runs FOR EACH ROW EXECUTE FUNCTION chat_debug_runs_index();
CREATE TRIGGER chat_debug_steps_index
AFTER INSERT OR UPDATE OF normalized_request, normalized_response, model
ON chat_debug_steps FOR EACH ROW EXECUTE FUNCTION chat_debug_steps_index();

-- What was recorded before this version.
SELECT chat_debug_search_put(id::text, id, summary ->> 'first_message')
FROM chat_debug_runs WHERE jsonb_typeof(summary -> 'first_message') = 'string';
SELECT chat_debug_search_put(
    id::text || ':request', run_id,
    chat_debug_search_text(normalized_request, 'lax $.messages[*].parts[*]'))
FROM chat_debug_steps;
SELECT chat_debug_search_put(
    id::text || ':response', run_id,
    chat_debug_search_text(normalized_response, 'lax $.content[*]'))
FROM chat_debug_steps WHERE normalized_response IS NOT NULL;
INSERT INTO chat_debug_run_models (model, run_id)
SELECT model, id FROM chat_debug_runs WHERE model IS NOT NULL
UNION SELECT model, run_id FROM chat_debug_steps WHERE model IS NOT NULL
UNION SELECT normalized_request ->> 'model', run_id FROM chat_debug_steps
WHERE jsonb_typeof(normalized_request -> 'model') = 'string'
ON CONFLICT DO NOTHING;
