"""Produce a source (thread dump, JSON lines) to comments.raw, keyed by thread, with rate control."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from aiokafka import AIOKafkaProducer

from streams import topics
from streams.kafka_admin import ensure_topics
from streams.kafka_security import aiokafka_options
from streams.settings import Settings
from streams.sources.registry import SourceItem


@dataclass
class FeedStats:
    sent: int = 0
    bad: int = 0
    seconds: float = 0.0


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
        linger_ms=5,
        max_batch_size=256 * 1024,
        request_timeout_ms=30000,
    )
    await producer.start()
    stats = FeedStats()
    started = time.perf_counter()
    limiter = RateLimiter(rate)
    pending: list[asyncio.Future[object]] = []
    try:
        for item in items:
            await limiter.wait()
            pending.append(
                await producer.send(settings.topic(topics.RAW), value=item.value, key=item.key.encode() or None)
            )
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
