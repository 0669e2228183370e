"""ingest: comments.raw -> validate -> comments.valid (envelopes per thread partition) | comments.dlq."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

import faust

from streams import faults, metrics, topics
from streams.agents.common import as_bytes, send_dead_letter, send_envelopes
from streams.agents.runner import run_batches
from streams.app import app, raw_topic, settings, valid_topic
from streams.batches import group_by_partition, partition_of
from streams.ingest import Rejection, validate
from streams.models import CommentEvent

AGENT = "ingest"
#: Raw messages per batch (each is one comment from outside: the only per-comment Kafka messages).
INGEST_BATCH = 2000
INGEST_WITHIN_SECONDS = 0.05


async def handle(events: Sequence[faust.EventT[Any]]) -> None:
    metrics.EVENTS_IN.labels(AGENT).inc(len(events))
    accepted: list[CommentEvent] = []
    for event in events:
        result = validate(as_bytes(event.value))
        if isinstance(result, Rejection):
            await send_dead_letter(event, result, stage=AGENT)
            continue
        if result.unknown_fields:
            metrics.UNKNOWN_FIELDS.labels(AGENT).inc(len(result.unknown_fields))
        accepted.append(result)
    # A thread's comments go to one comments.valid partition, in the order they were read.
    by_thread = group_by_partition(accepted, lambda e: partition_of(e.thread_id, settings.partitions))
    await asyncio.gather(*await send_envelopes(valid_topic, by_thread, agent=AGENT, label=topics.VALID))
    faults.checkpoint(AGENT)


@app.agent(raw_topic, name="ingest")
async def ingest(stream: faust.StreamT[bytes]) -> None:
    await run_batches(AGENT, stream, handle, max_messages=INGEST_BATCH, within_seconds=INGEST_WITHIN_SECONDS)
