-- An Idempotency-Key is bound to the request it came with: a SHA-256 of its method, target and
-- body. NULL for events' $insert_id, which any retry of the event may reuse.
ALTER TABLE applied_keys ADD COLUMN fingerprint TEXT;
