-- Generated from schemas/clickhouse/0001_comments_and_dead_letters.sql for ON CLUSTER streams
-- by `make cluster-ddl` (python -m streams.clickhouse.cluster --write): do not edit.

CREATE TABLE IF NOT EXISTS comments_local ON CLUSTER 'streams'
(
    thread_id      String,
    comment_id     String,
    event_id       String,
    event_type     LowCardinality(String),
    source         LowCardinality(String),
    thread_title   String,
    parent_id      Nullable(String),
    parent_author  Nullable(String),
    author         String,
    posted_at      DateTime64(3, 'UTC'),
    edited_at      Nullable(DateTime64(3, 'UTC')),
    body           String,
    url            Nullable(String),
    root_id        String,
    depth          UInt16,
    parent_missing UInt8,
    body_length    UInt32,
    word_count     UInt32,
    enriched_at    DateTime64(3, 'UTC'),
    version        UInt64,
    is_deleted     UInt8
)
ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/{database}/comments_local', '{replica}', version, is_deleted)
PARTITION BY toYYYYMM(posted_at)
ORDER BY (thread_id, comment_id);

CREATE TABLE IF NOT EXISTS comments ON CLUSTER 'streams'
AS comments_local
ENGINE = Distributed('streams', currentDatabase(), 'comments_local', cityHash64(thread_id, comment_id));

CREATE TABLE IF NOT EXISTS dead_letters_local ON CLUSTER 'streams'
(
    dead_letter_id   String,
    stage            LowCardinality(String),
    reason_code      LowCardinality(String),
    reason           String,
    source_topic     String,
    source_partition Int32,
    source_offset    Int64,
    raw              String,
    received_at      DateTime64(3, 'UTC')
)
ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/{database}/dead_letters_local', '{replica}')
ORDER BY dead_letter_id;

CREATE TABLE IF NOT EXISTS dead_letters ON CLUSTER 'streams'
AS dead_letters_local
ENGINE = Distributed('streams', currentDatabase(), 'dead_letters_local', cityHash64(dead_letter_id));
