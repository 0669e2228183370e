-- Generated from schemas/clickhouse/0005_moderation_reviews.sql for ON CLUSTER streams
-- by `make cluster-ddl` (python -m streams.clickhouse.cluster --write): do not edit.

CREATE TABLE IF NOT EXISTS moderation_reviews_local ON CLUSTER 'streams'
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
ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/{database}/moderation_reviews_local', '{replica}', reviewed_at)
ORDER BY (thread_id, comment_id, category, reviewer);

CREATE TABLE IF NOT EXISTS moderation_reviews ON CLUSTER 'streams'
AS moderation_reviews_local
ENGINE = Distributed('streams', currentDatabase(), 'moderation_reviews_local', cityHash64(thread_id, comment_id, category, reviewer));

ALTER TABLE comments_local ON CLUSTER 'streams'
    ADD COLUMN IF NOT EXISTS model_version LowCardinality(String) DEFAULT '';

ALTER TABLE comments ON CLUSTER 'streams'
    ADD COLUMN IF NOT EXISTS model_version LowCardinality(String) DEFAULT '';
