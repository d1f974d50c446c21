-- The in-app inbox: one item per message the inbox channel delivered, keyed by the message id
-- (delivery is at least once: a second delivery finds the item). `seq` orders a user's inbox,
-- newest first, and is its cursor; the marks are times (microseconds), null until marked.
CREATE TABLE inbox_items (
    seq         INTEGER PRIMARY KEY AUTOINCREMENT,
    message_id  TEXT NOT NULL UNIQUE,
    env         TEXT NOT NULL,
    distinct_id TEXT NOT NULL,
    workflow    TEXT NOT NULL,
    category    TEXT,
    title       TEXT NOT NULL,
    body        TEXT NOT NULL,
    action_url  TEXT,
    created_at  INTEGER NOT NULL,
    seen_at     INTEGER,
    read_at     INTEGER,
    archived_at INTEGER
);
CREATE INDEX inbox_items_by_user ON inbox_items (env, distinct_id, seq);
