-- Search by run. A run matches a search when each word is in one of its texts, not
-- necessarily the same one, so the search looks words up per run: chat_debug_run_search
-- holds each run's words (the lexemes of all its documents in chat_debug_search,
-- without positions) and its start time, under a GIN index of the words. One tsquery
-- of all the words ('a':* & 'b':*) then finds exactly the runs that match, and checking
-- one run is one lookup. The documents' own GIN index is no longer read and goes.
--
-- Kept by triggers on chat_debug_search: a new document adds its words to its run's; a
-- document whose words changed makes the run's words be recomputed from its documents
-- (with the run's row locked first, so a document added meanwhile is not lost). Rows
-- go with their run (ON DELETE CASCADE), as the documents do.
--
-- The indexes of runs by status and by user, then start time, let a status filter (the
-- failed runs) or a user filter read only the runs it keeps, newest first.

CREATE TABLE chat_debug_run_search (
    run_id     UUID        PRIMARY KEY REFERENCES chat_debug_runs (id) ON DELETE CASCADE,
    started_at TIMESTAMPTZ NOT NULL,
    document   TSVECTOR    NOT NULL
);
CREATE INDEX idx_chat_debug_run_search_document ON chat_debug_run_search USING GIN (document);

-- The union of the words of several documents.
CREATE AGGREGATE chat_debug_words(TSVECTOR) (
    SFUNC = tsvector_concat, STYPE = TSVECTOR, INITCOND = ''
);

CREATE FUNCTION chat_debug_run_search_add() RETURNS TRIGGER LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO chat_debug_run_search AS r (run_id, started_at, document)
    VALUES (NEW.run_id, (SELECT started_at FROM chat_debug_runs WHERE id = NEW.run_id),
            strip(NEW.document))
    ON CONFLICT (run_id) DO UPDATE SET document = r.document || excluded.document
    WHERE r.document || excluded.document <> r.document;
    RETURN NULL;
END
$$;

CREATE FUNCTION chat_debug_run_search_redo() RETURNS TRIGGER LANGUAGE plpgsql AS $$
BEGIN
    PERFORM 1 FROM chat_debug_run_search WHERE run_id = NEW.run_id FOR UPDATE;
    UPDATE chat_debug_run_search SET document = (
        SELECT chat_debug_words(strip(s.document)) FROM chat_debug_search AS s
        WHERE s.run_id = NEW.run_id)
    WHERE run_id = NEW.run_id;
    RETURN NULL;
END
$$;

CREATE TRIGGER chat_debug_run_search_add AFTER INSERT ON chat_debug_search
FOR EACH ROW EXECUTE FUNCTION chat_debug_run_search_add();
CREATE TRIGGER chat_debug_run_search_redo AFTER UPDATE OF document ON chat_debug_search
FOR EACH ROW WHEN (OLD.document IS DISTINCT FROM NEW.document)
EXECUTE FUNCTION chat_debug_run_search_redo();

-- The runs recorded before this version.
INSERT INTO chat_debug_run_search (run_id, started_at, document)
SELECT s.run_id, r.started_at, chat_debug_words(strip(s.document))
FROM chat_debug_search AS s JOIN chat_debug_runs AS r ON r.id = s.run_id
GROUP BY s.run_id, r.started_at;

DROP INDEX idx_chat_debug_search_document;

CREATE INDEX idx_chat_debug_runs_status_started ON chat_debug_runs (status, started_at);
CREATE INDEX idx_chat_debug_runs_user_started ON chat_debug_runs (user_id, started_at);
