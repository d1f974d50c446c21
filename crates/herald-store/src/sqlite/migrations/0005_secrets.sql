-- Secrets every Herald node shares (the key that signs hosted preference links), made once by
-- whichever node needs one first.
CREATE TABLE server_secrets (
    name  TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
