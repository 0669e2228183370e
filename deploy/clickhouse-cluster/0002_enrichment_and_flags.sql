-- Generated from schemas/clickhouse/0002_enrichment_and_flags.sql for ON CLUSTER streams
-- by `make cluster-ddl` (python -m streams.clickhouse.cluster --write): do not edit.

ALTER TABLE comments_local ON CLUSTER 'streams'
    ADD COLUMN IF NOT EXISTS link_count           UInt16 AFTER word_count,
    ADD COLUMN IF NOT EXISTS mention_count        UInt16 AFTER link_count,
    ADD COLUMN IF NOT EXISTS caps_ratio           Float32 AFTER mention_count,
    ADD COLUMN IF NOT EXISTS repeated_char_runs   UInt16 AFTER caps_ratio,
    ADD COLUMN IF NOT EXISTS fingerprint          String AFTER repeated_char_runs,
    ADD COLUMN IF NOT EXISTS language             LowCardinality(String) AFTER fingerprint,
    ADD COLUMN IF NOT EXISTS flags                Array(LowCardinality(String)) AFTER language,
    ADD COLUMN IF NOT EXISTS scores               Map(LowCardinality(String), Float32) AFTER flags,
    ADD COLUMN IF NOT EXISTS reasons              Map(LowCardinality(String), Array(String)) AFTER scores,
    ADD COLUMN IF NOT EXISTS toxicity             Float32 AFTER reasons,
    ADD COLUMN IF NOT EXISTS author_comment_count UInt32 AFTER toxicity,
    ADD COLUMN IF NOT EXISTS author_flagged_count UInt32 AFTER author_comment_count,
    ADD COLUMN IF NOT EXISTS author_thread_count  UInt32 AFTER author_flagged_count,
    ADD COLUMN IF NOT EXISTS author_first_seen    Nullable(DateTime64(3, 'UTC')) AFTER author_thread_count;

ALTER TABLE comments ON CLUSTER 'streams'
    ADD COLUMN IF NOT EXISTS link_count           UInt16 AFTER word_count,
    ADD COLUMN IF NOT EXISTS mention_count        UInt16 AFTER link_count,
    ADD COLUMN IF NOT EXISTS caps_ratio           Float32 AFTER mention_count,
    ADD COLUMN IF NOT EXISTS repeated_char_runs   UInt16 AFTER caps_ratio,
    ADD COLUMN IF NOT EXISTS fingerprint          String AFTER repeated_char_runs,
    ADD COLUMN IF NOT EXISTS language             LowCardinality(String) AFTER fingerprint,
    ADD COLUMN IF NOT EXISTS flags                Array(LowCardinality(String)) AFTER language,
    ADD COLUMN IF NOT EXISTS scores               Map(LowCardinality(String), Float32) AFTER flags,
    ADD COLUMN IF NOT EXISTS reasons              Map(LowCardinality(String), Array(String)) AFTER scores,
    ADD COLUMN IF NOT EXISTS toxicity             Float32 AFTER reasons,
    ADD COLUMN IF NOT EXISTS author_comment_count UInt32 AFTER toxicity,
    ADD COLUMN IF NOT EXISTS author_flagged_count UInt32 AFTER author_comment_count,
    ADD COLUMN IF NOT EXISTS author_thread_count  UInt32 AFTER author_flagged_count,
    ADD COLUMN IF NOT EXISTS author_first_seen    Nullable(DateTime64(3, 'UTC')) AFTER author_thread_count;
