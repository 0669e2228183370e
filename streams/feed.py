"""Produce a source (thread dump, JSON lines) to comments.raw, keyed by thread, with rate control."""

from __future__ import annotations

import asyncio
import hashlib
import os
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import msgspec
from aiokafka import AIOKafkaProducer

from streams import deadletters, topics
from streams.kafka_admin import ensure_topics
from streams.kafka_security import aiokafka_options
from streams.models import MAX_MESSAGE_BYTES, MAX_RAW_EVENT_BYTES, DeadLetter
from streams.settings import Settings
from streams.sources.registry import SourceItem


@dataclass
class FeedStats:
    sent: int = 0
    bad: int = 0
    #: Items too large for a Kafka message: sent to the dead-letter topic by the feeder itself.
    dead_lettered: int = 0
    seconds: float = 0.0
    #: Messages the broker acknowledged (acks=all), counted as acks arrive: exact after a Ctrl-C too.
    acked: int = 0
    #: partition -> [first, last] offset acknowledged (what `streams reconcile` looks for).
    offsets: dict[int, list[int]] = field(default_factory=dict)
    #: Of the dead_lettered, those the broker acknowledged on the dead-letter topic.
    acked_dead_letters: int = 0


#: How long a feed waits when a followed file has nothing new.
IDLE_SECONDS = 0.25


def oversize_dead_letter(item: SourceItem, *, raw_topic: str) -> DeadLetter:
    """The feeder's own dead letter for an item no Kafka message can carry."""
    where = f" ({item.origin})" if item.origin else ""
    return deadletters.dead_letter(
        "too_large",
        f"{len(item.value)} bytes{where}; a message on {raw_topic} is at most {MAX_RAW_EVENT_BYTES}",
        stage="feed",
        raw=item.value,
        topic=raw_topic,
        partition=-1,
        offset=-1,
        origin=item.origin or f"sha256:{hashlib.sha256(item.value).hexdigest()}",
    )


class RateLimiter:
    """Spread sends evenly at `rate` per second (None: as fast as the broker takes them)."""

    def __init__(self, rate: float | None) -> None:
        self.interval = 1.0 / rate if rate else 0.0
        self.next_at = time.monotonic()

    async def wait(self) -> None:
        if not self.interval:
            return
        now = time.monotonic()
        if self.next_at > now:
            await asyncio.sleep(self.next_at - now)
        self.next_at = max(self.next_at, now) + self.interval


async def feed(
    settings: Settings,
    items: Iterable[SourceItem | None],
    *,
    rate: float | None = None,
    on_sent: Callable[[SourceItem], None] | None = None,
    stats: FeedStats | None = None,
) -> FeedStats:
    """Send every item (bad lines too: ingest dead-letters them with the reason) and wait for acks.

    Pass `stats` to read what was sent and acknowledged even when the feed is interrupted. A None
    item means "nothing yet" (a followed file that has not grown): wait a moment, collecting acks.
    """
    await ensure_topics(settings)
    producer = AIOKafkaProducer(
        **aiokafka_options(settings),
        acks="all",
        enable_idempotence=True,
        max_request_size=MAX_MESSAGE_BYTES,
        linger_ms=5,
        max_batch_size=256 * 1024,
        request_timeout_ms=30000,
    )
    await producer.start()
    stats = stats if stats is not None else FeedStats()
    started = time.perf_counter()
    limiter = RateLimiter(rate)
    pending: list[asyncio.Future[object]] = []
    raw_topic = settings.topic(topics.RAW)
    try:
        for item in items:
            if item is None:
                await asyncio.gather(*pending)
                pending.clear()
                await asyncio.sleep(IDLE_SECONDS)
                continue
            await limiter.wait()
            key = item.key.encode() or None
            if len(item.value) > MAX_RAW_EVENT_BYTES:
                value, headers = deadletters.to_message(oversize_dead_letter(item, raw_topic=raw_topic))
                dlq_future = await producer.send(settings.topic(topics.DLQ), value=value, key=key, headers=headers)
                dlq_future.add_done_callback(partial(_count_dead_letter_ack, stats))
                pending.append(dlq_future)
                stats.dead_lettered += 1
                stats.sent += 1
                stats.bad += 1
                if on_sent:
                    on_sent(item)
                continue
            origin = [(deadletters.ORIGIN_HEADER, item.origin.encode())] if item.origin else None
            future = await producer.send(raw_topic, value=item.value, key=key, headers=origin)
            future.add_done_callback(partial(_count_ack, stats))
            pending.append(future)
            stats.sent += 1
            stats.bad += int(item.bad)
            if on_sent:
                on_sent(item)
            if len(pending) >= 5000:
                await asyncio.gather(*pending)
                pending.clear()
        await asyncio.gather(*pending)
        await producer.flush()
    finally:
        await producer.stop()
    stats.seconds = time.perf_counter() - started
    return stats


def _count_dead_letter_ack(stats: FeedStats, future: asyncio.Future[object]) -> None:
    if not future.cancelled() and future.exception() is None:
        stats.acked_dead_letters += 1


def _count_ack(stats: FeedStats, future: asyncio.Future[object]) -> None:
    if future.cancelled() or future.exception() is not None:
        return
    stats.acked += 1
    meta = future.result()
    partition, offset = getattr(meta, "partition", None), getattr(meta, "offset", None)
    if isinstance(partition, int) and isinstance(offset, int):
        span = stats.offsets.get(partition)
        if span is None:
            stats.offsets[partition] = [offset, offset]
        else:
            span[0], span[1] = min(span[0], offset), max(span[1], offset)


# -- feed options: --limit, --loop, --dry-run, --follow ------------------------------------------


def limited(items: Iterable[SourceItem | None], limit: int | None) -> Iterator[SourceItem | None]:
    """The first `limit` items (all of them for None); idle markers (None) pass and do not count."""
    if limit is None:
        yield from items
        return
    if limit <= 0:
        return
    n = 0
    for item in items:
        yield item
        if item is not None:
            n += 1
            if n >= limit:
                return


def looped(make_items: Callable[[], Iterable[SourceItem]], times: int | None) -> Iterator[SourceItem]:
    """The items `times` times over (forever for None), re-reading the source each round.

    Ids are the source's, so a loop re-sends the same comments: load for the pipeline, not new rows.
    """
    rounds = 0
    while times is None or rounds < times:
        rounds += 1
        yield from make_items()


def dry_run(items: Iterable[SourceItem | None], on_item: Callable[[SourceItem], None] | None = None) -> FeedStats:
    """Parse and count only: nothing is sent."""
    stats = FeedStats()
    started = time.perf_counter()
    for item in items:
        if item is None:
            time.sleep(IDLE_SECONDS)
            continue
        stats.sent += 1
        stats.bad += int(item.bad)
        if on_item:
            on_item(item)
    stats.seconds = time.perf_counter() - started
    return stats


def follow_lines(path: Path, *, stop: Callable[[], bool] | None = None) -> Iterator[bytes | None]:
    """Lines of a growing file as `tail -f` gives them (from the start), until `stop()` is true.

    Yields None when there is nothing new (the caller waits, without blocking an event loop). A
    partial last line is held back until its line break arrives; a file truncated or replaced (log
    rotation) is read again from its start.
    """
    fh = path.open("rb")
    partial_line = b""
    inode = os.fstat(fh.fileno()).st_ino
    try:
        while True:
            chunk = fh.readline()
            if chunk:
                partial_line += chunk
                if partial_line.endswith(b"\n"):
                    yield partial_line
                    partial_line = b""
                continue
            if stop is not None and stop():
                if partial_line:
                    yield partial_line
                return
            try:
                current = path.stat()
            except FileNotFoundError:
                current = None
            if current is not None and (current.st_ino != inode or current.st_size < fh.tell()):
                fh.close()
                fh = path.open("rb")
                inode = os.fstat(fh.fileno()).st_ino
                partial_line = b""
                continue
            yield None
    finally:
        fh.close()


def follow_items(path: Path, *, stop: Callable[[], bool] | None = None) -> Iterator[SourceItem | None]:
    """SourceItems of a growing JSON-lines file of comment events (bad lines go on to dead-letter);
    None while the file has nothing new."""
    from streams.sources.jsonlines import decode_line

    line_no = 0
    for line in follow_lines(path, stop=stop):
        if line is None:
            yield None
            continue
        line_no += 1
        raw = line.rstrip(b"\r\n")
        if not raw.strip():
            continue
        try:
            event = decode_line(raw)
        except ValueError as exc:
            yield SourceItem(key="", value=raw, bad=True, reason=f"line {line_no}: {exc}")
            continue
        yield SourceItem(key=event.thread_id, value=msgspec.json.encode(event))
