"""windows: event-time windows and detectors.

comments.enriched (key thread) --fan-out--> windows.input (key "kind:key") --engine--> activity.windows,
alerts, windows.late. The fan-out puts every item of an author / category / parent author / text
fingerprint in one partition, so those windows are exact however many workers run. A timer puts a
tick on every windows.input partition, so idle handling runs inside the partition's own stream
(Faust tables can only be written while processing an event of that partition).
"""

from __future__ import annotations

import time
from pathlib import Path

import faust
import msgspec

from streams import metrics, topics
from streams.agents.common import ENCODER, as_bytes, timed
from streams.app import (
    activity_windows_topic,
    alerts_topic,
    app,
    enriched_topic,
    late_topic,
    settings,
    table,
    windows_input_topic,
)
from streams.models import EnrichedComment
from streams.windows.detectors import load_detector_config
from streams.windows.engine import EngineOutput, WindowConfig, WindowEngine, WindowInput, route, route_key

TICK_KEY = b"__tick__"


class WindowDelivery(msgspec.Struct, frozen=True, kw_only=True):
    """A message on windows.input: one (kind, key, item) delivery, or a tick (item is None)."""

    kind: str = ""
    key: str = ""
    item: WindowInput | None = None
    tick_ms: int = 0


_ENRICHED = msgspec.json.Decoder(EnrichedComment)
_DELIVERY = msgspec.json.Decoder(WindowDelivery)

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
    )


def window_config() -> WindowConfig:
    path = Path(settings.moderation_file) if settings.moderation_file else None
    return WindowConfig(
        allowed_lateness_ms=int(settings.window_lateness_seconds * 1000),
        retention_ms=int(settings.window_retention_seconds * 1000),
        idle_timeout_ms=int(settings.window_idle_seconds * 1000),
        detectors=load_detector_config(path),
    )


@app.agent(enriched_topic, name="windows_fanout")
async def windows_fanout(stream: faust.StreamT[bytes]) -> None:
    async for value in stream:
        metrics.EVENTS_IN.labels("windows_fanout").inc()
        comment = _ENRICHED.decode(as_bytes(value))
        item = window_input(comment)
        for kind, key in route(item):
            delivery = WindowDelivery(kind=kind, key=key, item=item)
            await windows_input_topic.send(key=route_key(kind, key).encode(), value=ENCODER.encode(delivery))
            metrics.EVENTS_OUT.labels("windows_fanout", topics.WINDOWS_INPUT).inc()


@app.agent(windows_input_topic, name="windows")
async def windows(stream: faust.StreamT[bytes]) -> None:
    engine = WindowEngine(window_config(), window_state)
    async for event in stream.events():
        delivery = _DELIVERY.decode(as_bytes(event.value))
        partition = event.message.partition
        now_ms = int(time.time() * 1000)
        with timed("windows"):
            if delivery.item is None:
                output = engine.tick(partition, now_ms)
            else:
                metrics.EVENTS_IN.labels("windows").inc()
                output = engine.process(partition, delivery.kind, delivery.key, delivery.item, now_ms)
            await publish(output)
        watermark = engine.watermark(partition)
        if watermark is not None:
            metrics.WATERMARK_SECONDS.labels(str(partition)).set(watermark / 1000)


async def publish(output: EngineOutput) -> None:
    for row in output.windows:
        await activity_windows_topic.send(key=route_key(row.kind, row.key).encode(), value=ENCODER.encode(row))
        metrics.WINDOWS_EMITTED.labels(row.kind).inc()
    for late in output.late:
        await late_topic.send(key=late.thread_id.encode(), value=ENCODER.encode(late))
        metrics.LATE_EVENTS.labels(late.window_kind).inc()
    for alert in output.alerts:
        await alerts_topic.send(key=f"{alert.detector}:{alert.thread_id}".encode(), value=ENCODER.encode(alert))
        metrics.ALERTS.labels(alert.detector).inc()


@app.timer(interval=max(1.0, settings.window_idle_seconds / 3), on_leader=True)
async def tick_windows() -> None:
    payload = ENCODER.encode(WindowDelivery(tick_ms=int(time.time() * 1000)))
    for partition in range(settings.partitions):
        await windows_input_topic.send(key=TICK_KEY, value=payload, partition=partition)
