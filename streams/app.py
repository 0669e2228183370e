"""The Faust application: one per process, configured from the STREAMS_* settings.

Topic values are raw bytes (JSON of streams.models types) decoded by our own msgspec code, so that
validation failures are ours to route to the dead-letter topic rather than Faust's to crash on.
"""

from __future__ import annotations

from typing import Any

import faust

from streams import faults, kafka_consumer, state_restore, topics
from streams.batches import envelope_buffer
from streams.kafka_security import faust_credentials
from streams.models import MAX_MESSAGE_BYTES
from streams.settings import Settings, load_settings

settings: Settings = load_settings()
faults.configure(settings.fault_inject)  # a malformed plan stops the worker here, not mid-run

app = faust.App(
    settings.faust_app_id,
    broker=settings.broker_url,
    # The consumer that never commits what it has not processed (streams/kafka_consumer.py).
    broker_consumer=settings.broker_url.replace("kafka://", f"{kafka_consumer.SCHEME}://"),
    # TLS and/or SASL from the STREAMS_KAFKA_* settings (None: PLAINTEXT).
    broker_credentials=faust_credentials(settings),
    # Faust's memory store, restored in bulk and never re-read on a rebalance (streams/state_restore.py).
    store=state_restore.install(settings),
    datadir=settings.data_dir,
    topic_partitions=settings.partitions,
    topic_replication_factor=1,
    key_serializer="raw",
    value_serializer="raw",
    consumer_auto_offset_reset="earliest",
    web_enabled=True,
    web_port=settings.web_port,
    web_bind=settings.web_host,
    web_host=settings.web_host,
    # Faust's own pages show the topology and table contents: only when asked for.
    web_router_enabled=settings.web_debug_pages,
    web_tables_enabled=settings.web_debug_pages,
    web_graph_enabled=settings.web_debug_pages,
    web_stats_enabled=settings.web_debug_pages,
    # Commit often: a crash then replays little (replays are harmless, merely slower).
    broker_commit_every=1000,
    broker_commit_interval=1.0,
    producer_acks=-1,
    # Batch sends for a few milliseconds: one produce request per batch instead of per message.
    producer_linger=0.005,
    producer_max_batch_size=256 * 1024,
    # The topics' max.message.bytes: any message the model allows can be sent (streams/models.py).
    producer_max_request_size=MAX_MESSAGE_BYTES,
    broker_session_timeout=settings.session_timeout_seconds,
    broker_heartbeat_interval=min(3.0, settings.session_timeout_seconds / 3),
    # Static membership (KIP-345) when set: a restarted worker takes its partitions back at once.
    consumer_group_instance_id=settings.worker_instance_id or None,
    autodiscover=False,
    # No standby copies of the tables: a standby applies every changelog record of another worker's
    # partitions through Faust's per-message machinery, which doubled the CPU of each process of
    # `--processes 2` (1.4 CPU s per 1,000 events each, as much as one process doing everything).
    # A partition that moves is restored from its changelog instead (seconds; see README, Processes).
    table_standby_replicas=0,
)


def topic(name: str, *, maxsize: int | None = None) -> faust.TopicT:
    """`maxsize`: how many messages an agent's stream of it may buffer (None: Faust's default)."""
    created = app.topic(settings.topic(name), partitions=settings.partitions)
    if maxsize is not None:
        # App.topic takes `maxsize` but does not pass it on (faust-streaming 0.15.3): set it on the
        # topic, which its agents' channels are cloned from.
        created.maxsize = maxsize
    return created


def table(name: str, help: str) -> faust.Table[str, Any]:
    """A changelog-backed memory table; Faust serialises table keys and values as JSON."""
    created = app.Table(name, default=None, partitions=settings.partitions, help=help)
    assert isinstance(created, faust.Table)
    return created


#: Topics of envelopes (streams/batches.py) buffer fewer messages than Faust's default, which counts
#: single comments (see batches.ENVELOPE_BUFFER_AT_BASE).
_ENVELOPES = envelope_buffer(settings.partitions)
raw_topic = topic(topics.RAW)
valid_topic = topic(topics.VALID, maxsize=_ENVELOPES)
authored_topic = topic(topics.AUTHORED, maxsize=_ENVELOPES)
enriched_topic = topic(topics.ENRICHED, maxsize=_ENVELOPES)
flagged_topic = topic(topics.FLAGGED)
rescored_topic = topic(topics.RESCORED, maxsize=_ENVELOPES)
dlq_topic = topic(topics.DLQ)
windows_input_topic = topic(topics.WINDOWS_INPUT, maxsize=_ENVELOPES)
activity_windows_topic = topic(topics.ACTIVITY_WINDOWS, maxsize=_ENVELOPES)
alerts_topic = topic(topics.ALERTS)
late_topic = topic(topics.LATE)
