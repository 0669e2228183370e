-- Comments, one row per comment identity. A replay re-inserts identical rows; ReplacingMergeTree keeps
-- the highest `version` (edits, parent fixes) and hides rows whose latest version is a deletion.
-- Read with FINAL (or argMax) for exact counts before background merges have run.
CREATE TABLE IF NOT EXISTS comments
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
ENGINE = ReplacingMergeTree(version, is_deleted)
PARTITION BY toYYYYMM(posted_at)
ORDER BY (thread_id, comment_id);

-- Input no stage could accept: the reason and the original bytes. Keyed by where it was read from,
-- so a replay of the dead-letter topic lands once.
CREATE TABLE IF NOT EXISTS dead_letters
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
ENGINE = ReplacingMergeTree
ORDER BY dead_letter_id;
