"""Helpers the agents share: dead-lettering, timing, the writer."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, cast

import faust
import msgspec
from faust.streams import Stream

from streams import metrics, topics
from streams.app import dlq_topic, settings
from streams.clickhouse.writer import ClickHouseWriter
from streams.ingest import Rejection, dead_letter

ENCODER = msgspec.json.Encoder()

#: The worker's single ClickHouse connection (an embedded directory admits one process anyway).
writer = ClickHouseWriter(settings.clickhouse_dsn)


async def send_dead_letter(event: faust.EventT[Any], rejection: Rejection, *, stage: str) -> None:
    message = event.message
    letter = dead_letter(
        rejection,
        stage=stage,
        raw=as_bytes(message.value),
        topic=message.topic,
        partition=message.partition,
        offset=message.offset,
    )
    await dlq_topic.send(key=message.key, value=ENCODER.encode(letter))
    metrics.DEAD_LETTERS.labels(stage, rejection.reason_code).inc()
    metrics.EVENTS_FAILED.labels(stage, rejection.reason_code).inc()
    metrics.EVENTS_OUT.labels(stage, topics.DLQ).inc()


def concrete(stream: faust.StreamT[Any]) -> Stream[Any]:
    """The agent's stream as the class it is: take_events() and friends are not on StreamT."""
    return cast(Stream[Any], stream)


@contextmanager
def timed(agent: str) -> Iterator[None]:
    started = time.perf_counter()
    try:
        yield
    finally:
        metrics.PROCESSING_SECONDS.labels(agent).observe(time.perf_counter() - started)


def as_bytes(value: Any) -> bytes:
    if isinstance(value, bytes):
        return value
    if value is None:
        return b""
    return str(value).encode()
