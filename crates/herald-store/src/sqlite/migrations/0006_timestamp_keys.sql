-- The built-in timestamps take `$` keys in the property registry, as `$status` does, so a custom
-- property may be called `created_at` or `updated_at` without being mistaken for them.
UPDATE properties SET key = '$created_at' WHERE key = 'created_at' AND kind = 'general';
UPDATE properties SET key = '$updated_at' WHERE key = 'updated_at' AND kind = 'general';
