"""ingest: comments.raw -> streams.steps.ingest -> comments.valid (envelopes per thread partition) | comments.dlq."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

import faust

from streams import faults, metrics, topics
from streams.agents.common import as_bytes, send_dead_letter, send_envelopes
from streams.agents.runner import run_batches
from streams.app import app, raw_topic, settings, valid_topic
from streams.steps.ingest import validate_batch

AGENT = "ingest"
#: Raw messages per batch (each is one comment from outside: the only per-comment Kafka messages).
INGEST_BATCH = 2000
INGEST_WITHIN_SECONDS = 0.05


async def handle(events: Sequence[faust.EventT[Any]]) -> None:
    metrics.EVENTS_IN.labels(AGENT).inc(len(events))
    out = validate_batch([as_bytes(event.value) for event in events], partitions=settings.partitions)
    for position, rejection in out.rejected:
        await send_dead_letter(events[position], rejection, stage=AGENT)
    if out.unknown_fields:
        metrics.UNKNOWN_FIELDS.labels(AGENT).inc(out.unknown_fields)
    # Each event's place on comments.raw rides along: enrich tells this batch's copies, sent again
    # after a crash, from a source sending a comment again (streams.steps.enrich.RawPositions).
    raw = {
        partition: [(events[p].message.partition, events[p].message.offset) for p in positions]
        for partition, positions in out.positions.items()
    }
    await asyncio.gather(*await send_envelopes(valid_topic, out.valid, agent=AGENT, label=topics.VALID, raw=raw))
    faults.checkpoint(AGENT)


@app.agent(raw_topic, name="ingest")
async def ingest(stream: faust.StreamT[bytes]) -> None:
    await run_batches(AGENT, stream, handle, max_messages=INGEST_BATCH, within_seconds=INGEST_WITHIN_SECONDS)
