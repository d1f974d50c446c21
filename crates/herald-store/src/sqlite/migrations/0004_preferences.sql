-- Each user's notification preferences live on the profile (locked, versioned and erased with it).
ALTER TABLE profiles ADD COLUMN preferences TEXT NOT NULL DEFAULT '{}';

-- Notification categories (topics) per environment; `doc` is herald_core::preference::Category.
CREATE TABLE categories (
    env        TEXT NOT NULL,
    slug       TEXT NOT NULL,
    doc        TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    PRIMARY KEY (env, slug)
);
