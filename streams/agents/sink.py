"""sink: batches rows (bounded by count and time) into ClickHouse, then lets Faust commit offsets.

Each message is pinned (an extra reference) while its batch is in flight and released only after
ClickHouse accepted the batch. If the worker stops or dies mid-insert, the pinned offsets are never
committed and the batch is consumed again on restart; the tables are idempotent, so nothing doubles.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

import faust
import msgspec

from streams import deadletters, metrics
from streams.agents.common import as_bytes, concrete, dead_letter_of, send_dead_letter, writer
from streams.app import (
    activity_windows_topic,
    alerts_topic,
    app,
    dlq_topic,
    enriched_topic,
    late_topic,
    settings,
)
from streams.clickhouse.rows import COMMENT_COLUMNS, DEAD_LETTER_COLUMNS, comment_row, dead_letter_row
from streams.clickhouse.writer import dedup_token
from streams.ingest import Rejection
from streams.models import DeadLetter, EnrichedComment
from streams.windows.detectors import Alert
from streams.windows.engine import LateEvent, WindowRow

RowFn = Callable[[bytes, Any], list[Any]]  # (value, headers) -> row


def batch_token(events: Sequence[faust.EventT[Any]]) -> str:
    """The batch's insert_deduplication_token: the offset range it holds of each partition. A replay
    that batches the same messages is dropped by replicated tables (cluster mode); one that batches
    them differently is inserted and collapsed by ReplacingMergeTree, as on a single node."""
    spans: dict[tuple[str, int], tuple[int, int]] = {}
    for event in events:
        m = event.message
        first, last = spans.get((m.topic, m.partition), (m.offset, m.offset))
        spans[(m.topic, m.partition)] = (min(first, m.offset), max(last, m.offset))
    return ",".join(dedup_token(t, p, a, b) for (t, p), (a, b) in sorted(spans.items()))


def clickhouse_sink(source: faust.TopicT, *, table: str, columns: Sequence[str], to_row: RowFn) -> None:
    agent_name = f"sink_{table}"

    async def sink(stream: faust.StreamT[bytes]) -> None:
        async for events in concrete(stream).take_events(settings.sink_batch_rows, within=settings.sink_batch_seconds):
            started = time.perf_counter()
            for event in events:
                event.message.incref()
            metrics.EVENTS_IN.labels(agent_name).inc(len(events))
            rows = []
            for event in events:
                try:
                    rows.append(to_row(as_bytes(event.value), event.message.headers))
                except (msgspec.MsgspecError, ValueError, RecursionError) as exc:
                    # Our own topics carry our own types, so this is a bug upstream: keep the bytes.
                    rejection = Rejection("undecodable", f"{table} sink could not decode: {exc}")
                    if source is dlq_topic:
                        rows.append(dead_letter_row(dead_letter_of(event, rejection, stage=agent_name)))
                    else:
                        await send_dead_letter(event, rejection, stage=agent_name)
            await writer.insert(table, rows, columns, dedup_token=batch_token(events))
            metrics.BATCH_SIZE.labels(agent_name).observe(len(rows))
            now = time.time()
            for event in events:
                event.message.decref()  # the batch is in ClickHouse: offsets may now be committed
                metrics.END_TO_END_SECONDS.labels(table).observe(max(0.0, now - event.message.timestamp))
            metrics.PROCESSING_SECONDS.labels(agent_name).observe(time.perf_counter() - started)

    app.agent(source, name=agent_name)(sink)


_ENRICHED = msgspec.json.Decoder(EnrichedComment)
_DEAD = msgspec.json.Decoder(DeadLetter)


def dead_letter_from(value: bytes, headers: Any) -> list[Any]:
    """A dead-letter row: from the headers, or from the JSON form written before migration 0004."""
    try:
        return dead_letter_row(deadletters.from_message(value, headers))
    except deadletters.NotADeadLetter:
        return dead_letter_row(_DEAD.decode(value))


clickhouse_sink(
    enriched_topic,
    table="comments",
    columns=COMMENT_COLUMNS,
    to_row=lambda raw, _headers: comment_row(_ENRICHED.decode(raw)),
)
clickhouse_sink(dlq_topic, table="dead_letters", columns=DEAD_LETTER_COLUMNS, to_row=dead_letter_from)


def struct_sink(source: faust.TopicT, table: str, struct: type[msgspec.Struct]) -> None:
    """A sink for a msgspec Struct whose fields are, in order, the table's columns."""
    decoder = msgspec.json.Decoder(struct)
    clickhouse_sink(
        source,
        table=table,
        columns=struct.__struct_fields__,
        to_row=lambda raw, _headers: list(msgspec.structs.astuple(decoder.decode(raw))),
    )


struct_sink(activity_windows_topic, "activity_windows", WindowRow)
struct_sink(alerts_topic, "alerts", Alert)
struct_sink(late_topic, "late_events", LateEvent)
