-- Workflows per environment; `doc` is herald_core::workflow::WorkflowInput (`Workflow::to_input`).
CREATE TABLE workflows (
    env        TEXT NOT NULL,
    slug       TEXT NOT NULL,
    doc        TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    PRIMARY KEY (env, slug)
);

-- The event names that start each workflow, keyed for the track-event lookup.
CREATE TABLE workflow_events (
    env   TEXT NOT NULL,
    event TEXT NOT NULL,
    slug  TEXT NOT NULL,
    PRIMARY KEY (env, event, slug),
    FOREIGN KEY (env, slug) REFERENCES workflows (env, slug) ON DELETE CASCADE
);
CREATE INDEX workflow_events_by_workflow ON workflow_events (env, slug);
