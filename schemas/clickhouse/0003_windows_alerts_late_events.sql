-- Event-time window aggregates. A window corrected by a late event is emitted again with a higher
-- version; ReplacingMergeTree (read with FINAL) keeps the latest.
-- kind: thread_1m | author_1m | category_1m | thread_trend_10m
CREATE TABLE IF NOT EXISTS activity_windows
(
    kind             LowCardinality(String),
    key              String,
    window_start     DateTime64(3, 'UTC'),
    window_end       DateTime64(3, 'UTC'),
    comments         UInt32,
    distinct_authors UInt32,
    flagged_comments UInt32,
    flagged          Map(LowCardinality(String), UInt32),
    mean_toxicity    Float32,
    max_depth        UInt16,
    velocity         Float32,
    acceleration     Float32,
    version          UInt32,
    emitted_at       DateTime64(3, 'UTC')
)
ENGINE = ReplacingMergeTree(version)
PARTITION BY toYYYYMM(window_start)
ORDER BY (kind, key, window_start);

-- Detector findings, with the evidence that made them fire.
CREATE TABLE IF NOT EXISTS alerts
(
    alert_id     String,
    detector     LowCardinality(String),
    thread_id    String,
    author       String,
    window_start DateTime64(3, 'UTC'),
    window_end   DateTime64(3, 'UTC'),
    severity     Float32,
    summary      String,
    evidence     String,
    detected_at  DateTime64(3, 'UTC')
)
ENGINE = ReplacingMergeTree
ORDER BY (detector, alert_id);

-- Comments that arrived after their windows were closed for good (beyond the retention horizon):
-- counted here instead of vanishing.
CREATE TABLE IF NOT EXISTS late_events
(
    comment_id   String,
    thread_id    String,
    author       String,
    posted_at    DateTime64(3, 'UTC'),
    watermark    DateTime64(3, 'UTC'),
    window_kind  LowCardinality(String),
    received_at  DateTime64(3, 'UTC')
)
ENGINE = ReplacingMergeTree
ORDER BY (thread_id, comment_id, window_kind);
