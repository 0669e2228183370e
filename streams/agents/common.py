"""Helpers the agents share: dead-lettering, timing, the writer."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, TypeVar, cast

import faust
import msgspec
from faust.streams import Stream

from streams import metrics, topics
from streams.app import dlq_topic, settings
from streams.clickhouse.readonly import ReadOnlyClient
from streams.clickhouse.writer import ClickHouseWriter
from streams.ingest import Rejection, dead_letter
from streams.models import DeadLetter

ENCODER = msgspec.json.Encoder()
T = TypeVar("T")

#: The worker's ClickHouse connection for inserts (an embedded directory admits one process anyway).
writer = ClickHouseWriter(settings.clickhouse_dsn)
#: A read-only session of its own for ad-hoc queries (/sql) and gauges: never the inserts' connection.
reader = ReadOnlyClient(settings.clickhouse_dsn, settings.query_limits())


def dead_letter_of(event: faust.EventT[Any], rejection: Rejection, *, stage: str) -> DeadLetter:
    """The dead letter for `event`: its original bytes and where it was read from."""
    m = event.message
    return dead_letter(
        rejection, stage=stage, raw=as_bytes(m.value), topic=m.topic, partition=m.partition, offset=m.offset
    )


async def send_dead_letter(event: faust.EventT[Any], rejection: Rejection, *, stage: str) -> None:
    letter = dead_letter_of(event, rejection, stage=stage)
    await dlq_topic.send(key=event.message.key, value=ENCODER.encode(letter))
    metrics.DEAD_LETTERS.labels(stage, rejection.reason_code).inc()
    metrics.EVENTS_FAILED.labels(stage, rejection.reason_code).inc()
    metrics.EVENTS_OUT.labels(stage, topics.DLQ).inc()


async def decode_or_dead_letter(
    event: faust.EventT[Any], decoder: msgspec.json.Decoder[T], *, stage: str, reason_code: str = "schema"
) -> T | None:
    """Decode an event's value; a value that does not decode goes to the dead-letter topic (None)."""
    try:
        return decoder.decode(as_bytes(event.value))
    except msgspec.MsgspecError as exc:
        await send_dead_letter(event, Rejection(reason_code, str(exc)), stage=stage)
        return None


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
