-- The indexes of runs by status and by user, then start time, let a status filter (the
-- failed runs) or a user filter read only the runs it keeps, newest first, also when it
-- narrows a text search. (PostgreSQL's version also indexes each run's words; SQLite's
-- search joins the words' matches run by run as it reads them, see the store.)

CREATE INDEX idx_chat_debug_runs_status_started ON chat_debug_runs (status, started_at);
CREATE INDEX idx_chat_debug_runs_user_started ON chat_debug_runs (user_id, started_at);
