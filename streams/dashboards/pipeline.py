"""The pipeline health dashboard: agents' throughput, latency, lag, batches and inserts
(Prometheus), dead letters and late events (ClickHouse).
"""

from __future__ import annotations

from streams.dashboards.model import Dashboard, PromQuery, Row
from streams.dashboards.panels import _prom, _quantiles, _table
from streams.dashboards.variables import AGENT_VAR, DATASOURCE_VAR, PROMETHEUS_VAR


def _pipeline() -> Dashboard:
    agent = 'agent=~"$agent"'
    throughput = Row(
        "Throughput",
        (
            _prom(
                "events_in",
                "Events in per agent",
                "Messages each agent received per second.",
                PromQuery(f"sum by (agent) (rate(streams_events_in_total{{{agent}}}[$__rate_interval]))", "{{agent}}"),
                unit="ops",
            ),
            _prom(
                "events_out",
                "Events out per agent",
                "Messages each agent produced per second, by target topic.",
                PromQuery(
                    f"sum by (agent, topic) (rate(streams_events_out_total{{{agent}}}[$__rate_interval]))",
                    "{{agent}} → {{topic}}",
                ),
                unit="ops",
            ),
            _prom(
                "events_failed",
                "Failed events",
                "Messages an agent could not process, by reason code.",
                PromQuery(
                    f"sum by (agent, reason) (rate(streams_events_failed_total{{{agent}}}[$__rate_interval]))",
                    "{{agent}}: {{reason}}",
                ),
                unit="ops",
            ),
            _prom(
                "rows_inserted",
                "Rows inserted into ClickHouse",
                "Rows per second written by the sink, by table.",
                PromQuery("sum by (table) (rate(streams_clickhouse_rows_total[$__rate_interval]))", "{{table}}"),
                unit="rowsps",
            ),
        ),
    )
    latency = Row(
        "Latency and batches",
        (
            _prom(
                "processing_latency",
                "Processing latency",
                "Time an agent spends on one message (one batch for the sink).",
                *_quantiles("streams_processing_seconds", "agent", "{{agent}}", selector=agent),
                unit="s",
            ),
            _prom(
                "end_to_end_latency",
                "End-to-end latency",
                "From a message's Kafka timestamp to its row being in ClickHouse.",
                *_quantiles("streams_end_to_end_seconds", "table", "{{table}}", (0.5, 0.95)),
                unit="s",
            ),
            _prom(
                "insert_latency",
                "ClickHouse insert latency",
                "Duration of one insert, by table.",
                *_quantiles("streams_clickhouse_insert_seconds", "table", "{{table}}", (0.5, 0.95)),
                unit="s",
            ),
            _prom(
                "batch_size",
                "Sink batch size",
                "Rows per sink batch: median, p95 and mean.",
                *_quantiles("streams_batch_size", "agent", "{{agent}}", (0.5, 0.95), selector=agent),
                PromQuery(
                    f"sum by (agent) (rate(streams_batch_size_sum{{{agent}}}[$__rate_interval])) / "
                    f"sum by (agent) (rate(streams_batch_size_count{{{agent}}}[$__rate_interval]))",
                    "mean {{agent}}",
                ),
                unit="short",
            ),
        ),
    )
    backlog = Row(
        "Backlog and errors",
        (
            _prom(
                "consumer_lag",
                "Consumer lag",
                "Messages between the committed offset and the end of each topic.",
                PromQuery("sum by (topic) (streams_consumer_lag)", "{{topic}}"),
                unit="short",
            ),
            _prom(
                "second_stage_changes",
                "Second-stage verdict changes",
                "Flags the second-stage model (streams worker --second-stage) raised or cleared per second, "
                "by category; empty when it does not run.",
                PromQuery(
                    "sum by (category, change) (rate(streams_second_stage_changes_total[$__rate_interval]))",
                    "{{category}} {{change}}",
                ),
                unit="ops",
            ),
            _prom(
                "watermark_age",
                "Event-time watermark age",
                "How far each partition's watermark is behind the wall clock (large during a replay).",
                PromQuery("time() - max by (partition) (streams_window_watermark_seconds)", "partition {{partition}}"),
                unit="s",
            ),
            _prom(
                "records_reread",
                "Records read again",
                "Records the consumer fetched again after a fetched batch was dropped undelivered (by Faust "
                "or a rebalance), by topic: without the re-read they would have been committed unprocessed.",
                PromQuery(
                    "sum by (topic) (increase(streams_consumer_records_reread_total[$__rate_interval]))", "{{topic}}"
                ),
                unit="short",
            ),
            _prom(
                "dead_letters",
                "Dead letters",
                "Messages sent to the dead-letter topic, by stage and reason.",
                PromQuery(
                    "sum by (stage, reason) (increase(streams_dead_letters_total[$__rate_interval]))",
                    "{{stage}}: {{reason}}",
                ),
                unit="short",
                width=8,
            ),
            _prom(
                "late_events",
                "Late events",
                "Comments too late for their (already expired) window, by window kind.",
                PromQuery("sum by (kind) (increase(streams_late_events_total[$__rate_interval]))", "{{kind}}"),
                unit="short",
                width=8,
            ),
            _prom(
                "insert_errors",
                "ClickHouse insert errors",
                "Failed inserts (retried with backoff), by table.",
                PromQuery(
                    "sum by (table) (increase(streams_clickhouse_insert_errors_total[$__rate_interval]))", "{{table}}"
                ),
                unit="short",
                width=8,
            ),
        ),
    )
    outputs = Row(
        "Outputs",
        (
            _prom(
                "flags_rate",
                "Flags raised",
                "Comments flagged per second, by category.",
                PromQuery("sum by (category) (rate(streams_flags_total[$__rate_interval]))", "{{category}}"),
                unit="ops",
                width=8,
            ),
            _prom(
                "windows_emitted",
                "Windows emitted",
                "Window rows emitted per second (first versions and corrections), by kind.",
                PromQuery("sum by (kind) (rate(streams_windows_emitted_total[$__rate_interval]))", "{{kind}}"),
                unit="ops",
                width=8,
            ),
            _prom(
                "alerts_raised",
                "Alerts raised",
                "Detector alerts, by detector.",
                PromQuery("sum by (detector) (increase(streams_alerts_total[$__rate_interval]))", "{{detector}}"),
                PromQuery("max by (table) (streams_table_rows)", "rows in {{table}}"),
                unit="short",
                width=8,
            ),
        ),
    )
    clickhouse = Row(
        "Dead letters and late events in ClickHouse",
        (
            _table(
                "latest_dead_letters",
                "Latest dead letters",
                "Input no stage could accept, newest first, with where it was read from.",
                """SELECT received_at AS time,
       stage,
       reason_code,
       reason,
       source_topic,
       source_partition,
       source_offset,
       substring(raw, 1, 200) AS raw_excerpt
FROM dead_letters FINAL
WHERE $__timeFilter(received_at)
ORDER BY received_at DESC, dead_letter_id
LIMIT 50""",
                (
                    "time",
                    "stage",
                    "reason_code",
                    "reason",
                    "source_topic",
                    "source_partition",
                    "source_offset",
                    "raw_excerpt",
                ),
                width=16,
            ),
            _table(
                "late_events_by_kind",
                "Late events by window kind",
                "Comments that arrived after their window closed for good, and by how much.",
                """SELECT window_kind,
       count() AS late_events,
       max(dateDiff('second', posted_at, watermark)) AS max_lateness_s,
       max(received_at) AS last_seen
FROM late_events FINAL
WHERE $__timeFilter(received_at)
GROUP BY window_kind
ORDER BY late_events DESC, window_kind""",
                ("window_kind", "late_events", "max_lateness_s", "last_seen"),
                width=8,
            ),
        ),
    )
    return Dashboard(
        "pipeline-health",
        "Pipeline health",
        "Agents' throughput, latency, lag, batches and inserts (Prometheus), dead letters and late events.",
        "pipeline-health.json",
        (PROMETHEUS_VAR, DATASOURCE_VAR, AGENT_VAR),
        (throughput, latency, backlog, outputs, clickhouse),
        time_from="now-1h",
        refresh="10s",
    )
