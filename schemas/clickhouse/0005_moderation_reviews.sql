-- Moderators' verdicts on our flags (`streams review`, POST /reviews on the worker): confirm = the
-- flag was right, reject = the flag was wrong, missed = the comment should have been flagged in
-- that category. One row per (comment, category, reviewer): a repeated review replaces itself and
-- a changed verdict replaces the older one (the latest reviewed_at wins; read with FINAL). Not
-- partitioned: a verdict changed months later must still replace the old row.
-- model_version is the moderation model version the comment's row was scored with (see comments).
CREATE TABLE IF NOT EXISTS moderation_reviews
(
    review_id     String,
    thread_id     String,
    comment_id    String,
    category      LowCardinality(String),
    verdict       Enum8('confirm' = 1, 'reject' = 2, 'missed' = 3),
    reviewer      String,
    note          String,
    model_version LowCardinality(String),
    reviewed_at   DateTime64(3, 'UTC')
)
ENGINE = ReplacingMergeTree(reviewed_at)
ORDER BY (thread_id, comment_id, category, reviewer);

-- The moderation model version each comment was scored with ("<model ids>@<config hash>", from
-- streams/enrich/flags.py ModerationConfig.model_version); '' for rows scored before this column.
ALTER TABLE comments ADD COLUMN IF NOT EXISTS model_version LowCardinality(String) DEFAULT '';
