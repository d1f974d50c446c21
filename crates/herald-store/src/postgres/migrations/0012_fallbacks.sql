-- `first_success` fallbacks: a waiting message's entry names the message it waits for (the one
-- before it in the channel order). While it waits its `due_at` is the far future, so no claim
-- takes it; when that message fails for good the entry is made due (`waits_for` cleared), when
-- it is sent the entry is deleted, in the transaction that records the outcome.
ALTER TABLE outbox ADD COLUMN waits_for TEXT;
CREATE INDEX outbox_by_waits_for ON outbox (waits_for) WHERE waits_for IS NOT NULL;
