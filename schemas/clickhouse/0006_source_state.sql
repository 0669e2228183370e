-- Schema v2 events carry the comment's moderation state at its source (visible, pending, spam,
-- deleted, removed, hidden) and what kind of record it was (submission, story, pingback, ...), so
-- dashboards can compare the source's moderation with our flags. Empty for v1 events.
ALTER TABLE comments ADD COLUMN IF NOT EXISTS source_state LowCardinality(String) DEFAULT '';
ALTER TABLE comments ADD COLUMN IF NOT EXISTS source_kind LowCardinality(String) DEFAULT '';
