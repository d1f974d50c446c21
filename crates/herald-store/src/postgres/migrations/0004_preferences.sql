-- Each user's notification preferences live on the profile (locked, versioned and erased with it).
ALTER TABLE profiles ADD COLUMN preferences JSONB NOT NULL DEFAULT '{}';

-- Notification categories (topics) per environment; `doc` is herald_core::preference::Category.
CREATE TABLE categories (
    env        TEXT NOT NULL,
    slug       TEXT NOT NULL,
    doc        JSONB NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    PRIMARY KEY (env, slug)
);
