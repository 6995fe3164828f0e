-- Provider and model of each step as plain columns, so dashboards and queries group
-- steps by model without reading their JSON payloads. The exporter writes them from the
-- step's gen_ai.provider.name and response model (else request model); a run updated
-- without a provider/model of its own takes those of its first step that has them.

ALTER TABLE chat_debug_steps ADD COLUMN provider TEXT;
ALTER TABLE chat_debug_steps ADD COLUMN model TEXT;

-- Dashboards select runs and steps by the time they started (the selected time range).
CREATE INDEX idx_chat_debug_runs_started ON chat_debug_runs (started_at);
CREATE INDEX idx_chat_debug_steps_started ON chat_debug_steps (started_at);
