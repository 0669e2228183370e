"""Helpers the agents share: dead-lettering, timing, the writer."""

from __future__ import annotations

from collections.abc import Awaitable, Iterable
from typing import Any, Protocol, TypeVar, cast

import faust
import msgspec
from faust.streams import Stream

from streams import batches, deadletters, metrics, topics
from streams.app import dlq_topic, settings
from streams.clickhouse.readonly import ReadOnlyClient
from streams.clickhouse.writer import ClickHouseWriter
from streams.ingest import Rejection
from streams.models import DeadLetter

ENCODER = msgspec.json.Encoder()
T = TypeVar("T")
T_co = TypeVar("T_co", covariant=True)


class Decodes(Protocol[T_co]):
    """A msgspec decoder or a batches.EnvelopeDecoder."""

    def decode(self, value: bytes, /) -> T_co: ...


#: The worker's ClickHouse connection for inserts (an embedded directory admits one process anyway).
writer = ClickHouseWriter(settings.clickhouse_dsn)
#: A read-only session of its own for ad-hoc queries (/sql) and gauges: never the inserts' connection.
reader = ReadOnlyClient(settings.clickhouse_dsn, settings.query_limits())


def dead_letter_of(
    event: faust.EventT[Any], rejection: Rejection, *, stage: str, raw: bytes | None = None, item: str = ""
) -> DeadLetter:
    """The dead letter for `event`: its original bytes, where it was read from, and the feeder's origin.
    For one item of an envelope: `raw`, the item's own bytes, and `item`, its id (tells the letters of
    one envelope apart)."""
    m = event.message
    origin = deadletters.header_map(m.headers).get(deadletters.ORIGIN_HEADER, "")
    return deadletters.dead_letter(
        rejection.reason_code,
        rejection.reason,
        stage=stage,
        raw=as_bytes(m.value) if raw is None else raw,
        topic=m.topic,
        partition=m.partition,
        offset=m.offset,
        origin=origin,
        item=item,
    )


async def send_dead_letter(
    event: faust.EventT[Any], rejection: Rejection, *, stage: str, raw: bytes | None = None, item: str = ""
) -> None:
    """Send the event's dead letter (see dead_letter_of) and wait until the broker has it (the input is
    acknowledged after)."""
    letter = dead_letter_of(event, rejection, stage=stage, raw=raw, item=item)
    value, headers = deadletters.to_message(letter)
    sent = await dlq_topic.send(key=event.message.key, value=value, headers=headers)
    await sent
    metrics.DEAD_LETTERS.labels(stage, rejection.reason_code).inc()
    metrics.EVENTS_FAILED.labels(stage, rejection.reason_code).inc()
    metrics.EVENTS_OUT.labels(stage, topics.DLQ).inc()


async def decode_or_dead_letter(
    event: faust.EventT[Any], decoder: Decodes[T], *, stage: str, reason_code: str = "schema"
) -> T | None:
    """Decode an event's value; a value that does not decode goes to the dead-letter topic (None)."""
    try:
        return decoder.decode(as_bytes(event.value))
    except (msgspec.MsgspecError, UnicodeDecodeError, RecursionError, batches.UnknownEnvelope) as exc:
        await send_dead_letter(event, Rejection(reason_code, str(exc)), stage=stage)
        return None


def concrete(stream: faust.StreamT[Any]) -> Stream[Any]:
    """The agent's stream as the class it is: take_events() and friends are not on StreamT."""
    return cast(Stream[Any], stream)


def as_bytes(value: Any) -> bytes:
    if isinstance(value, bytes):
        return value
    if value is None:
        return b""
    return str(value).encode()


#: A record for :func:`send_records`: key, value, partition.
Record = tuple[bytes | None, bytes | None, int]


async def send_records(
    producer: faust.types.ProducerT, topic: str, records: Iterable[Record]
) -> list[tuple[int, int, Awaitable[Any]]]:
    """Send `records` (in order per partition) as few Kafka record batches; return, per batch, its
    partition, its record count and its delivery future (which gives the batch's first offset). A
    producer ``send()`` per record costs a future, a callback and a metadata object each (a fifth
    of the worker's CPU went to the changelog's records that way); a record batch built here and
    handed over whole costs one. Batches are at most the producer's batch size; a record larger
    than that travels alone, as ``send()`` would send it."""
    aio = cast(Any, producer)._ensure_producer()  # the aiokafka producer under Faust's
    by_partition: dict[int, list[tuple[bytes | None, bytes | None]]] = {}
    for key, value, partition in records:
        by_partition.setdefault(partition, []).append((key, value))
    sent: list[tuple[int, int, Awaitable[Any]]] = []
    for partition, rows in by_partition.items():
        batch, count = aio.create_batch(), 0
        for key, value in rows:
            if batch.append(key=key, value=value, timestamp=None) is None:  # full: send it, start another
                sent.append((partition, count, await aio.send_batch(batch, topic, partition=partition)))
                batch, count = aio.create_batch(), 0
                batch.append(key=key, value=value, timestamp=None)  # an empty batch takes any first record
            count += 1
        batch.close()
        sent.append((partition, count, await aio.send_batch(batch, topic, partition=partition)))
    return sent


async def send_envelopes(
    topic: faust.TopicT,
    rows_by_partition: dict[int, list[Any]],
    *,
    agent: str,
    label: str,
    key: bytes | None = None,
    raw: dict[int, list[tuple[int, int]]] | None = None,
) -> list[Awaitable[Any]]:
    """Send each partition's rows, in order, as envelopes (streams/batches.py); return the delivery
    futures. `label` is the topic's registry name (streams.topics), for the metric; `key` marks
    envelopes of another kind than the topic's rows (None: its rows, counted in the metric); `raw`:
    each row's position on comments.raw, per partition (ingest's envelopes)."""
    sent: list[Awaitable[Any]] = []
    for partition, rows in sorted(rows_by_partition.items()):
        for value in batches.encode_envelopes(rows, raw=None if raw is None else raw[partition]):
            sent.append(await topic.send(key=key, value=value, partition=partition))
        if key is None:
            metrics.EVENTS_OUT.labels(agent, label).inc(len(rows))
    return sent
