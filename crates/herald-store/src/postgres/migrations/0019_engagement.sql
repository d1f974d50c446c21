-- Engagement and smart channel orders. A message records when its user first saw it (inbox
-- seen or read, email opened, a `seen` event) and first clicked it (a tracked link, a `clicked`
-- event), in microseconds. A `smart` step's outbox entry keeps its gate: how long after the
-- message before it was sent it becomes due (`gate_wait`, seconds), and what engagement with an
-- earlier message of the trigger closes it (`gate_until`: seen | clicked). The gate is checked
-- when the entry is claimed, against the trigger's other messages.
ALTER TABLE messages ADD COLUMN seen_at BIGINT;
ALTER TABLE messages ADD COLUMN clicked_at BIGINT;
CREATE INDEX messages_by_trigger ON messages (env, trigger_id);
ALTER TABLE outbox ADD COLUMN gate_wait BIGINT;
ALTER TABLE outbox ADD COLUMN gate_until TEXT;
