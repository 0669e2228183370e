"""ingest: comments.raw -> validate -> comments.valid | comments.dlq."""

from __future__ import annotations

import faust

from streams import metrics, topics
from streams.agents.common import ENCODER, as_bytes, send_dead_letter, timed
from streams.app import app, raw_topic, valid_topic
from streams.ingest import Rejection, validate

AGENT = "ingest"


@app.agent(raw_topic, name="ingest")
async def ingest(stream: faust.StreamT[bytes]) -> None:
    async for event in stream.events():
        metrics.EVENTS_IN.labels(AGENT).inc()
        with timed(AGENT):
            result = validate(as_bytes(event.value))
            if isinstance(result, Rejection):
                await send_dead_letter(event, result, stage=AGENT)
                continue
            if result.unknown_fields:
                metrics.UNKNOWN_FIELDS.labels(AGENT).inc(len(result.unknown_fields))
            await valid_topic.send(key=result.thread_id.encode(), value=ENCODER.encode(result))
            metrics.EVENTS_OUT.labels(AGENT, topics.VALID).inc()
