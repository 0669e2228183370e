"""The worker's consumer asks for short fetch waits: requests queued behind a waiting fetch on the
same broker connection (list offsets during a rebalance's recovery) wait for it to end."""

from __future__ import annotations

import asyncio

from streams.app import app
from streams.kafka_consumer import FETCH_MAX_WAIT_MS, SafeConsumerThread


def test_worker_consumer_waits_at_most_fetch_max_wait_ms_for_data() -> None:
    async def created_wait() -> int:
        thread = app.consumer._thread  # type: ignore[attr-defined]  # the driver's consumer thread
        assert isinstance(thread, SafeConsumerThread)
        consumer = thread._create_worker_consumer(app.transport)
        try:
            return int(consumer._fetch_max_wait_ms)
        finally:
            await consumer.stop()

    assert FETCH_MAX_WAIT_MS < 1500  # Faust's own, which cost ~1.5 s per recovery step
    assert asyncio.run(created_wait()) == FETCH_MAX_WAIT_MS
