"""Create the pipeline's topics up front, with the configured partition count.

A producer that runs before any worker would otherwise get broker-default topics, and Faust refuses
to start when a source topic's partitions disagree with its tables' changelogs.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError

from streams import topics
from streams.kafka_security import aiokafka_options
from streams.models import MAX_MESSAGE_BYTES
from streams.settings import Settings

#: Stated, not left to the broker's default, so the model's byte limits (streams/models.py) hold.
TOPIC_CONFIG = {"max.message.bytes": str(MAX_MESSAGE_BYTES)}


async def ensure_topics(settings: Settings, names: Iterable[str] = topics.ALL) -> list[str]:
    """Create missing topics; return the names created."""
    admin = AIOKafkaAdminClient(**aiokafka_options(settings), request_timeout_ms=15000)
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        wanted = [settings.topic(n) for n in names]
        missing = [n for n in wanted if n not in existing]
        if missing:
            # A worker may create them at the same moment: that is fine.
            with contextlib.suppress(TopicAlreadyExistsError):
                await admin.create_topics(
                    [
                        NewTopic(
                            name=n,
                            num_partitions=settings.partitions,
                            replication_factor=1,
                            topic_configs=TOPIC_CONFIG,
                        )
                        for n in missing
                    ]
                )
        return missing
    finally:
        await admin.close()
