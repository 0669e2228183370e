"""Helpers the agents share: dead-lettering, timing, the writer."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, TypeVar, cast

import faust
import msgspec
from faust.streams import Stream

from streams import deadletters, metrics, topics
from streams.app import dlq_topic, settings
from streams.clickhouse.readonly import ReadOnlyClient
from streams.clickhouse.writer import ClickHouseWriter
from streams.ingest import Rejection
from streams.models import DeadLetter

ENCODER = msgspec.json.Encoder()
T = TypeVar("T")

#: The worker's ClickHouse connection for inserts (an embedded directory admits one process anyway).
writer = ClickHouseWriter(settings.clickhouse_dsn)
#: A read-only session of its own for ad-hoc queries (/sql) and gauges: never the inserts' connection.
reader = ReadOnlyClient(settings.clickhouse_dsn, settings.query_limits())


def dead_letter_of(event: faust.EventT[Any], rejection: Rejection, *, stage: str) -> DeadLetter:
    """The dead letter for `event`: its original bytes, where it was read from, and the feeder's origin."""
    m = event.message
    origin = deadletters.header_map(m.headers).get(deadletters.ORIGIN_HEADER, "")
    return deadletters.dead_letter(
        rejection.reason_code,
        rejection.reason,
        stage=stage,
        raw=as_bytes(m.value),
        topic=m.topic,
        partition=m.partition,
        offset=m.offset,
        origin=origin,
    )


async def send_dead_letter(event: faust.EventT[Any], rejection: Rejection, *, stage: str) -> None:
    """Send the event's dead letter and wait until the broker has it (the input is acknowledged after)."""
    letter = dead_letter_of(event, rejection, stage=stage)
    value, headers = deadletters.to_message(letter)
    sent = await dlq_topic.send(key=event.message.key, value=value, headers=headers)
    await sent
    metrics.DEAD_LETTERS.labels(stage, rejection.reason_code).inc()
    metrics.EVENTS_FAILED.labels(stage, rejection.reason_code).inc()
    metrics.EVENTS_OUT.labels(stage, topics.DLQ).inc()


async def decode_or_dead_letter(
    event: faust.EventT[Any], decoder: msgspec.json.Decoder[T], *, stage: str, reason_code: str = "schema"
) -> T | None:
    """Decode an event's value; a value that does not decode goes to the dead-letter topic (None)."""
    try:
        return decoder.decode(as_bytes(event.value))
    except (msgspec.MsgspecError, UnicodeDecodeError, RecursionError) as exc:
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
