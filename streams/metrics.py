"""Prometheus metrics of every agent, served at /metrics on the worker's web port.

Labels are bounded: agent, stage, topic, table, category, reason code, window kind, partition.
Never an author, thread or comment id (unbounded cardinality would swamp Prometheus).
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

REGISTRY = CollectorRegistry(auto_describe=True)

_LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)
_BATCH_BUCKETS = (1, 5, 10, 50, 100, 250, 500, 1000, 2500, 5000, 10000)

EVENTS_IN = Counter("streams_events_in", "Messages an agent received", ["agent"], registry=REGISTRY)
EVENTS_OUT = Counter(
    "streams_events_out", "Messages an agent produced, by target topic", ["agent", "topic"], registry=REGISTRY
)
EVENTS_FAILED = Counter(
    "streams_events_failed",
    "Messages an agent could not process, by reason code",
    ["agent", "reason"],
    registry=REGISTRY,
)
PROCESSING_SECONDS = Histogram(
    "streams_processing_seconds",
    "Time an agent spent on one message (or one batch for the sink)",
    ["agent"],
    buckets=_LATENCY_BUCKETS,
    registry=REGISTRY,
)
END_TO_END_SECONDS = Histogram(
    "streams_end_to_end_seconds",
    "From a message's Kafka timestamp to its row being in ClickHouse",
    ["table"],
    buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 300),
    registry=REGISTRY,
)
BATCH_SIZE = Histogram(
    "streams_batch_size",
    "Kafka messages per agent batch (after ingest a message is an envelope of rows)",
    ["agent"],
    buckets=_BATCH_BUCKETS,
    registry=REGISTRY,
)
GC_PAUSE_SECONDS = Histogram(
    "streams_gc_pause_seconds",
    "Python's cyclic garbage collections: how long each stopped the process, by generation",
    ["generation"],
    buckets=(0.001, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2, 5),
    registry=REGISTRY,
)
ROWS_PER_INSERT = Histogram(
    "streams_rows_per_insert", "Rows per ClickHouse insert", ["table"], buckets=_BATCH_BUCKETS, registry=REGISTRY
)
INSERT_SECONDS = Histogram(
    "streams_clickhouse_insert_seconds",
    "Duration of one ClickHouse insert",
    ["table"],
    buckets=_LATENCY_BUCKETS,
    registry=REGISTRY,
)
INSERT_ROWS = Counter("streams_clickhouse_rows", "Rows inserted into ClickHouse", ["table"], registry=REGISTRY)
INSERT_ERRORS = Counter(
    "streams_clickhouse_insert_errors",
    "Failed ClickHouse inserts (retried with backoff)",
    ["table"],
    registry=REGISTRY,
)
DEAD_LETTERS = Counter(
    "streams_dead_letters", "Messages sent to the dead-letter topic", ["stage", "reason"], registry=REGISTRY
)
STATE_RETIRED = Counter(
    "streams_state_retired",
    "State entries retired (STREAMS_STATE_RETENTION_SECONDS, STREAMS_STATE_QUIET_SECONDS), by table:"
    " comments of thread_state, texts of fingerprints, comments and author-thread keys of author_stats",
    ["table"],
    registry=REGISTRY,
)
REPLAYED_RETIRED = Counter(
    "streams_replayed_retired",
    "Events of comments retired from the thread state, read again after a crash or a failed attempt of the batch"
    " that processed them, or sent again by ingest after its crash: skipped (counted the first time), not"
    " dead-lettered",
    ["agent"],
    registry=REGISTRY,
)
STATE_ENTRIES = Gauge(
    "streams_state_entries",
    "Keys held in memory by each state table of this process (after its last persist): what the retention rules bound",
    ["table"],
    registry=REGISTRY,
)
STATE_SPLIT_VALUES = Counter(
    "streams_state_split_values",
    "State values written to the changelog as several records, being over one record's limit (streams/state_parts.py)",
    ["table"],
    registry=REGISTRY,
)
STATE_RESTORED_RECORDS = Counter(
    "streams_state_restored_records",
    "Changelog records a state table loaded in bulk when its partitions were assigned (streams/state_restore.py)",
    ["table"],
    registry=REGISTRY,
)
STATE_RESTORE_SECONDS = Counter(
    "streams_state_restore_seconds",
    "Seconds a state table spent loading its newly assigned changelog partitions (the worker reads no input meanwhile)",
    ["table"],
    registry=REGISTRY,
)
SOURCES_PAUSED = Gauge(
    "streams_sources_paused",
    "Input partitions an agent has paused because their event time ran ahead of the slowest one"
    " (STREAMS_MAX_SOURCE_SKEW_SECONDS)",
    ["agent"],
    registry=REGISTRY,
)
SOURCE_PAUSES = Counter(
    "streams_source_pauses",
    "Times an agent paused an input partition that ran ahead in event time",
    ["agent"],
    registry=REGISTRY,
)
UNKNOWN_FIELDS = Counter(
    "streams_unknown_fields",
    "Event keys the schema does not define, kept on the comment (unknown_fields column)",
    ["stage"],
    registry=REGISTRY,
)
FLAGS = Counter("streams_flags", "Comments flagged, by category", ["category"], registry=REGISTRY)
SECOND_STAGE_CHANGES = Counter(
    "streams_second_stage_changes",
    "Inline verdicts the second stage changed, by category and change (flagged: it raised the flag; cleared)",
    ["category", "change"],
    registry=REGISTRY,
)
LATE_EVENTS = Counter(
    "streams_late_events", "Comments too late for their (already expired) window", ["kind"], registry=REGISTRY
)
WINDOWS_EMITTED = Counter(
    "streams_windows_emitted",
    "Window rows emitted (first versions and corrections)",
    ["kind"],
    registry=REGISTRY,
)
ALERTS = Counter("streams_alerts", "Detector alerts raised", ["detector"], registry=REGISTRY)
CONSUMER_LAG = Gauge(
    "streams_consumer_lag",
    "Messages between the committed offset and the end of the partition",
    ["topic", "partition"],
    registry=REGISTRY,
)
CONSUMER_RECORDS_REREAD = Counter(
    "streams_consumer_records_reread",
    "Times records that Faust fetched but never delivered to an agent were caught and fetched again",
    ["topic"],
    registry=REGISTRY,
)
TABLE_ROWS = Gauge("streams_table_rows", "Rows in a ClickHouse table (sampled)", ["table"], registry=REGISTRY)
WATERMARK_SECONDS = Gauge(
    "streams_window_watermark_seconds",
    "Event-time watermark per partition (unix seconds)",
    ["partition"],
    registry=REGISTRY,
)


AGENT_CRASHES = Counter(
    "streams_agent_crashes", "Agent crashes (the agent restarts and replays what it held)", ["agent"], registry=REGISTRY
)
#: Crashes this close together mean an agent is crash-looping (/health answers 503).
CRASH_LOOP_WINDOW_SECONDS = 120.0
CRASH_LOOP_CRASHES = 3
_recent_crashes: dict[str, list[float]] = {}


def note_agent_crash(agent: str, now: float) -> None:
    """Count a crash of `agent` (metric, and the recent history /health looks at)."""
    AGENT_CRASHES.labels(agent).inc()
    history = _recent_crashes.setdefault(agent, [])
    history.append(now)
    del history[: max(0, len(history) - CRASH_LOOP_CRASHES)]


def crash_looping_agents(now: float) -> list[str]:
    """One line per agent that crashed CRASH_LOOP_CRASHES times within the window."""
    looping = []
    for agent, history in sorted(_recent_crashes.items()):
        recent = [t for t in history if now - t <= CRASH_LOOP_WINDOW_SECONDS]
        if len(recent) >= CRASH_LOOP_CRASHES:
            looping.append(f"agent {agent} crashed {len(recent)} times in {CRASH_LOOP_WINDOW_SECONDS:.0f}s")
    return looping
