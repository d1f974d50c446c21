-- Compact history (issue 12). Who made a change is named once, in `history_actors`, and each
-- event points at it instead of repeating the actor's JSON. `changes` take the compact form of
-- herald_core::history::pack from now on; rows written before keep theirs and read as they are.
-- Version 15 is other work's.
CREATE TABLE history_actors (
    id    INTEGER PRIMARY KEY,
    kind  TEXT NOT NULL,
    ident TEXT NOT NULL,
    UNIQUE (kind, ident)
);
INSERT INTO history_actors (kind, ident)
    SELECT DISTINCT json_extract(actor, '$.kind'), json_extract(actor, '$.id') FROM history
    ORDER BY 1, 2;
ALTER TABLE history ADD COLUMN actor_id INTEGER NOT NULL DEFAULT 0;
UPDATE history SET actor_id = (SELECT a.id FROM history_actors a
    WHERE a.kind = json_extract(history.actor, '$.kind')
      AND a.ident = json_extract(history.actor, '$.id'));
ALTER TABLE history DROP COLUMN actor;
