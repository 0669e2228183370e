"""windows: event-time windows and detectors.

enrich (in each thread's posting order) --fan-out--> windows.input --engine--> activity.windows, alerts,
windows.late. The fan-out puts every item of an author / category / parent author / text fingerprint
in one partition (crc32 of "kind:key" modulo the partition count), so those windows are exact however
many workers run. A message on windows.input is a list of deliveries for one partition: one enrich
batch fans out to ~6 deliveries per comment, and one Kafka message per delivery cost more than the
windows themselves. A timer puts a tick on every windows.input partition, so idle handling runs
inside the partition's own stream (Faust tables can only be written while processing an event of
that partition).
"""

from __future__ import annotations

import asyncio
import time
import zlib
from collections import defaultdict
from collections.abc import Awaitable, Sequence
from pathlib import Path
from typing import Any

import faust
import msgspec

from streams import faults, metrics, topics
from streams.agents.common import ENCODER, decode_or_dead_letter, send_envelopes
from streams.agents.runner import run_batches
from streams.agents.tablestore import StagedTable
from streams.app import (
    activity_windows_topic,
    alerts_topic,
    app,
    late_topic,
    settings,
    table,
    windows_input_topic,
)
from streams.batches import group_by_partition, partition_of
from streams.models import EnrichedComment
from streams.windows.detectors import load_detector_config
from streams.windows.engine import EngineOutput, WindowConfig, WindowEngine, WindowInput, route, route_key

TICK_KEY = b"__tick__"
DELIVERIES_KEY = b"__deliveries__"
#: Deliveries per windows.input message (~300 bytes each: well under Kafka's 1 MB message limit).
DELIVERIES_PER_MESSAGE = 500
WINDOWS_BATCH = 100
WINDOWS_WITHIN_SECONDS = 0.05


class WindowDelivery(msgspec.Struct, frozen=True, kw_only=True):
    """One entry of a windows.input message: a (kind, key) delivery from upstream partition `source`;
    or, without an item, a progress report (`source` has sent everything up to `progress_ms`) or a
    wall-clock tick (no source)."""

    kind: str = ""
    key: str = ""
    item: WindowInput | None = None
    #: Take the item out of this window (deleted, or an edit moved it off this route).
    remove: bool = False
    source: str = ""
    progress_ms: int = 0
    #: With a progress report: `source` has been consumed to its end (nothing more to send for now).
    caught_up: bool = False
    tick_ms: int = 0


_DELIVERIES = msgspec.json.Decoder(list[WindowDelivery])

window_state = table("window_state", "Event-time window buckets, watermarks and detector state per partition")


def window_input(comment: EnrichedComment) -> WindowInput:
    e = comment.event
    return WindowInput(
        comment_id=e.comment_id,
        thread_id=e.thread_id,
        author=e.author,
        parent_author=e.parent_author,
        posted_at_ms=int(e.posted_at.timestamp() * 1000),
        flags=list(comment.flags.flags),
        toxicity=comment.flags.scores.get("toxicity", 0.0),
        depth=comment.depth,
        fingerprint=comment.fingerprint,
        deleted=e.event_type == "comment.deleted",
    )


def window_config() -> WindowConfig:
    path = Path(settings.moderation_file) if settings.moderation_file else None
    idle_ms = int(settings.window_idle_seconds * 1000)
    return WindowConfig(
        allowed_lateness_ms=int(settings.window_lateness_seconds * 1000),
        retention_ms=int(settings.window_retention_seconds * 1000),
        idle_timeout_ms=idle_ms,
        # A source lagging behind (consumed more slowly) must hold windows back for a good while.
        source_idle_ms=max(4 * idle_ms, 120_000),
        # Every comments.valid partition reports progress to every windows partition.
        upstream_sources=settings.partitions,
        detectors=load_detector_config(path),
    )


def windows_partition(kind: str, key: str) -> int:
    """The windows.input partition that owns window (kind, key): stable across processes and restarts."""
    return zlib.crc32(route_key(kind, key).encode()) % settings.partitions


class FanOut:
    """One enrich batch's deliveries to the windows, grouped per windows.input partition."""

    def __init__(self) -> None:
        self.by_partition: dict[int, list[WindowDelivery]] = defaultdict(list)

    def add(self, comment: EnrichedComment, source: str, previous_routes: list[list[str]]) -> list[list[str]]:
        """Deliver one comment to every (kind, key) window it belongs to, and take it out of the
        windows its previous version was in but this one is not; return the routes it is in now."""
        item = window_input(comment)
        routes = [] if item.deleted else [[kind, key] for kind, key in route(item)]
        leaving = [r for r in previous_routes if r not in routes]
        if item.deleted:
            leaving += [[kind, key] for kind, key in route(item) if [kind, key] not in leaving]
        for targets, remove in ((routes, False), (leaving, True)):
            for kind, key in targets:
                self.by_partition[windows_partition(kind, key)].append(
                    WindowDelivery(kind=kind, key=key, item=item, source=source, remove=remove)
                )
        return routes

    def add_progress(self, progress: dict[str, int], caught_up: set[str]) -> None:
        """Tell every windows partition how far (in event time) each upstream source has sent.

        Upstream partitions are consumed at different speeds; a windows partition fed by several
        of them must not let the fastest one close windows the slower ones still have comments for.
        Added last, so each partition reads them after the batch's deliveries.
        """
        for source, event_ms in progress.items():
            report = WindowDelivery(source=source, progress_ms=event_ms, caught_up=source in caught_up)
            for partition in range(settings.partitions):
                self.by_partition[partition].append(report)

    async def send(self) -> list[Awaitable[Any]]:
        """Send the deliveries (in order within each partition); return the delivery futures."""
        sent: list[Awaitable[Any]] = []
        for partition, deliveries in self.by_partition.items():
            for i in range(0, len(deliveries), DELIVERIES_PER_MESSAGE):
                chunk = deliveries[i : i + DELIVERIES_PER_MESSAGE]
                value = ENCODER.encode(chunk)
                sent.append(await windows_input_topic.send(key=DELIVERIES_KEY, value=value, partition=partition))
            metrics.EVENTS_OUT.labels("enrich", topics.WINDOWS_INPUT).inc(len(deliveries))
        return sent


class Windows:
    """The windows step: deliveries in, window rows, late events and alerts out."""

    def __init__(self) -> None:
        # The engine changes its metadata, indexes and expiry lists in place; buckets it copies itself.
        self.store = StagedTable(window_state, copy_reads=lambda key: not key.startswith("b:"))
        self.engine = WindowEngine(window_config(), self.store)

    async def handle(self, events: Sequence[faust.EventT[Any]]) -> None:
        engine = self.engine
        now_ms = int(time.time() * 1000)
        output = EngineOutput()
        items = 0
        for event in events:
            self.store.at(event)
            deliveries = await decode_or_dead_letter(event, _DELIVERIES, stage="windows", reason_code="undecodable")
            partition = event.message.partition
            for delivery in deliveries or ():
                if delivery.item is not None:
                    items += 1
                    output.extend(
                        engine.process(
                            partition,
                            delivery.kind,
                            delivery.key,
                            delivery.item,
                            now_ms,
                            delivery.source or None,
                            remove=delivery.remove,
                        )
                    )
                elif delivery.source:
                    output.extend(
                        engine.progress(
                            partition, delivery.source, delivery.progress_ms, now_ms, caught_up=delivery.caught_up
                        )
                    )
                else:
                    output.extend(engine.tick(partition, now_ms))
        metrics.EVENTS_IN.labels("windows").inc(items)
        # Rows acknowledged by the broker before the state that produced them is persisted.
        await asyncio.gather(*await publish(output))
        faults.checkpoint("windows")
        await self.store.persist()
        for partition in {e.message.partition for e in events}:
            watermark = engine.watermark(partition)
            if watermark is not None:
                metrics.WATERMARK_SECONDS.labels(str(partition)).set(watermark / 1000)


@app.agent(windows_input_topic, name="windows")
async def windows(stream: faust.StreamT[bytes]) -> None:
    step = Windows()
    await run_batches(
        "windows",
        stream,
        step.handle,
        max_messages=WINDOWS_BATCH,
        within_seconds=WINDOWS_WITHIN_SECONDS,
        reset=step.store.reset,
    )


async def publish(output: EngineOutput) -> list[Awaitable[Any]]:
    """Send the engine's rows (window rows as envelopes, partitioned by window); return the delivery futures."""
    by_window = group_by_partition(
        output.windows, lambda row: partition_of(route_key(row.kind, row.key), settings.partitions)
    )
    sent = await send_envelopes(activity_windows_topic, by_window, agent="windows", label=topics.ACTIVITY_WINDOWS)
    for row in output.windows:
        metrics.WINDOWS_EMITTED.labels(row.kind).inc()
    # Late events and alerts stay one message each: rare, and alerts are read by people and tools.
    for late in output.late:
        sent.append(await late_topic.send(key=late.thread_id.encode(), value=ENCODER.encode(late)))
        metrics.LATE_EVENTS.labels(late.window_kind).inc()
    for alert in output.alerts:
        key = f"{alert.detector}:{alert.thread_id}".encode()
        sent.append(await alerts_topic.send(key=key, value=ENCODER.encode(alert)))
        metrics.ALERTS.labels(alert.detector).inc()
    return sent


@app.timer(interval=max(1.0, settings.window_idle_seconds / 3), on_leader=True)
async def tick_windows() -> None:
    payload = ENCODER.encode([WindowDelivery(tick_ms=int(time.time() * 1000))])
    for partition in range(settings.partitions):
        await windows_input_topic.send(key=TICK_KEY, value=payload, partition=partition)
