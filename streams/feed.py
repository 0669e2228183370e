"""Produce a source (thread dump, JSON lines) to comments.raw, keyed by thread, with rate control."""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

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
    items: Iterable[SourceItem],
    *,
    rate: float | None = None,
    on_sent: Callable[[SourceItem], None] | None = None,
) -> FeedStats:
    """Send every item (bad lines too: ingest dead-letters them with the reason) and wait for acks."""
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
    stats = FeedStats()
    started = time.perf_counter()
    limiter = RateLimiter(rate)
    pending: list[asyncio.Future[object]] = []
    raw_topic = settings.topic(topics.RAW)
    try:
        for item in items:
            await limiter.wait()
            key = item.key.encode() or None
            if len(item.value) > MAX_RAW_EVENT_BYTES:
                value, headers = deadletters.to_message(oversize_dead_letter(item, raw_topic=raw_topic))
                pending.append(await producer.send(settings.topic(topics.DLQ), value=value, key=key, headers=headers))
                stats.dead_lettered += 1
                stats.sent += 1
                stats.bad += 1
                if on_sent:
                    on_sent(item)
                continue
            origin = [(deadletters.ORIGIN_HEADER, item.origin.encode())] if item.origin else None
            pending.append(await producer.send(raw_topic, value=item.value, key=key, headers=origin))
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
