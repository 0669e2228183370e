"""sink: batches of messages (bounded by count and time) into ClickHouse, then lets Faust commit offsets.

The runner (streams/agents/runner.py) pins each message while its batch is in flight and releases it
only after ClickHouse accepted the batch. If the worker stops or dies mid-insert, the pinned offsets
are never committed and the batch is consumed again on restart; the tables are idempotent, so
nothing doubles. comments.enriched, comments.rescored and activity.windows carry envelopes of rows;
the other topics one row per message.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

import faust
import msgspec

from streams import deadletters, faults, metrics
from streams.agents.common import as_bytes, dead_letter_of, send_dead_letter, writer
from streams.agents.runner import run_batches
from streams.app import (
    activity_windows_topic,
    alerts_topic,
    app,
    dlq_topic,
    enriched_topic,
    late_topic,
    rescored_topic,
    settings,
)
from streams.batches import ENVELOPE_TYPICAL_ROWS, EnvelopeDecoder
from streams.clickhouse.rows import COMMENT_COLUMNS, DEAD_LETTER_COLUMNS, comment_row, dead_letter_row
from streams.clickhouse.writer import dedup_token
from streams.ingest import Rejection
from streams.models import DeadLetter, EnrichedComment
from streams.windows.detectors import Alert
from streams.windows.engine import LateEvent, WindowRow

RowsFn = Callable[[bytes, Any], list[list[Any]]]  # (value, headers) -> the message's rows


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


def clickhouse_sink(
    source: faust.TopicT,
    *,
    table: str,
    columns: Sequence[str],
    to_rows: RowsFn,
    enveloped: bool = False,
    name: str = "",
) -> None:
    """An agent (`name`, default sink_<table>) inserting what `source` carries into `table`: one
    column-oriented insert per batch."""
    agent_name = name or f"sink_{table}"

    async def handle(events: Sequence[faust.EventT[Any]]) -> None:
        metrics.EVENTS_IN.labels(agent_name).inc(len(events))
        rows: list[list[Any]] = []
        for event in events:
            try:
                rows.extend(to_rows(as_bytes(event.value), event.message.headers))
            except (msgspec.MsgspecError, ValueError, RecursionError) as exc:
                # Our own topics carry our own types, so this is a bug upstream: keep the bytes.
                rejection = Rejection("undecodable", f"{table} sink could not decode: {exc}")
                if source is dlq_topic:
                    rows.append(dead_letter_row(dead_letter_of(event, rejection, stage=agent_name)))
                else:
                    await send_dead_letter(event, rejection, stage=agent_name)
        await writer.insert(table, rows, columns, dedup_token=batch_token(events))
        metrics.ROWS_PER_INSERT.labels(table).observe(len(rows))
        faults.checkpoint(agent_name)
        now = time.time()
        for event in events:
            metrics.END_TO_END_SECONDS.labels(table).observe(max(0.0, now - event.message.timestamp))

    # sink_batch_rows counts rows: an envelope counts as batches.ENVELOPE_TYPICAL_ROWS of them.
    max_messages = max(1, settings.sink_batch_rows // ENVELOPE_TYPICAL_ROWS) if enveloped else settings.sink_batch_rows

    async def sink(stream: faust.StreamT[bytes]) -> None:
        await run_batches(
            agent_name, stream, handle, max_messages=max_messages, within_seconds=settings.sink_batch_seconds
        )

    app.agent(source, name=agent_name)(sink)


_ENRICHED_BATCH = EnvelopeDecoder(EnrichedComment)
_DEAD = msgspec.json.Decoder(DeadLetter)


def dead_letter_from(value: bytes, headers: Any) -> list[list[Any]]:
    """A dead-letter row: from the headers, or from the JSON form written before migration 0004."""
    try:
        return [dead_letter_row(deadletters.from_message(value, headers))]
    except deadletters.NotADeadLetter:
        return [dead_letter_row(_DEAD.decode(value))]


def comment_rows(value: bytes, _headers: Any) -> list[list[Any]]:
    return [comment_row(c) for c in _ENRICHED_BATCH.decode(value)]


clickhouse_sink(enriched_topic, table="comments", columns=COMMENT_COLUMNS, to_rows=comment_rows, enveloped=True)
# The second stage's newer row versions (empty unless a second-stage worker runs).
clickhouse_sink(
    rescored_topic,
    table="comments",
    columns=COMMENT_COLUMNS,
    to_rows=comment_rows,
    enveloped=True,
    name="sink_comments_rescored",
)
clickhouse_sink(dlq_topic, table="dead_letters", columns=DEAD_LETTER_COLUMNS, to_rows=dead_letter_from)


def struct_sink(source: faust.TopicT, table: str, struct: type[msgspec.Struct], *, enveloped: bool = False) -> None:
    """A sink for a msgspec Struct whose fields are, in order, the table's columns; `enveloped`:
    the topic carries envelopes of them (streams/batches.py), else one per message."""
    astuple = msgspec.structs.astuple
    if enveloped:
        envelopes = EnvelopeDecoder(struct)

        def to_rows(raw: bytes, _headers: Any) -> list[list[Any]]:
            return [list(astuple(row)) for row in envelopes.decode(raw)]
    else:
        decoder = msgspec.json.Decoder(struct)

        def to_rows(raw: bytes, _headers: Any) -> list[list[Any]]:
            return [list(astuple(decoder.decode(raw)))]

    clickhouse_sink(source, table=table, columns=struct.__struct_fields__, to_rows=to_rows, enveloped=enveloped)


struct_sink(activity_windows_topic, "activity_windows", WindowRow, enveloped=True)
struct_sink(alerts_topic, "alerts", Alert)
struct_sink(late_topic, "late_events", LateEvent)
