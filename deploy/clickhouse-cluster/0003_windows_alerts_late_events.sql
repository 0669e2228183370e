-- Generated from schemas/clickhouse/0003_windows_alerts_late_events.sql for ON CLUSTER streams
-- by `make cluster-ddl` (python -m streams.clickhouse.cluster --write): do not edit.

CREATE TABLE IF NOT EXISTS activity_windows_local ON CLUSTER 'streams'
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
ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/{database}/activity_windows_local', '{replica}', version)
PARTITION BY toYYYYMM(window_start)
ORDER BY (kind, key, window_start);

CREATE TABLE IF NOT EXISTS activity_windows ON CLUSTER 'streams'
AS activity_windows_local
ENGINE = Distributed('streams', currentDatabase(), 'activity_windows_local', cityHash64(kind, key, window_start));

CREATE TABLE IF NOT EXISTS alerts_local ON CLUSTER 'streams'
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
ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/{database}/alerts_local', '{replica}')
ORDER BY (detector, alert_id);

CREATE TABLE IF NOT EXISTS alerts ON CLUSTER 'streams'
AS alerts_local
ENGINE = Distributed('streams', currentDatabase(), 'alerts_local', cityHash64(detector, alert_id));

CREATE TABLE IF NOT EXISTS late_events_local ON CLUSTER 'streams'
(
    comment_id   String,
    thread_id    String,
    author       String,
    posted_at    DateTime64(3, 'UTC'),
    watermark    DateTime64(3, 'UTC'),
    window_kind  LowCardinality(String),
    received_at  DateTime64(3, 'UTC')
)
ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/{database}/late_events_local', '{replica}')
ORDER BY (thread_id, comment_id, window_kind);

CREATE TABLE IF NOT EXISTS late_events ON CLUSTER 'streams'
AS late_events_local
ENGINE = Distributed('streams', currentDatabase(), 'late_events_local', cityHash64(thread_id, comment_id, window_kind));
