"""windows: event-time windows and detectors.

enrich (in each thread's posting order) --fan-out--> windows.input --engine--> activity.windows, alerts,
windows.late. The fan-out and the engine's use are streams/steps/windows.py; windows.input carries
envelopes of deliveries (one envelope per windows partition per enrich batch; one delivery per comment
and partition, naming its windows there: a comment is in ~6 windows). A timer puts a tick on every
windows.input partition, so idle handling runs inside the partition's own stream (Faust tables can
only be written while processing an event of that partition).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Sequence
from typing import Any

import faust

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
from streams.batches import EnvelopeDecoder, encode_envelopes, envelopes_per_batch, group_by_partition, partition_of
from streams.steps.windows import WindowDelivery, apply, window_config
from streams.windows.engine import EngineOutput, WindowEngine, route_key

#: windows.input messages per batch with 4 partitions (envelopes of up to batches.ENVELOPE_MAX_ROWS
#: deliveries; scaled with the partition count: batches.envelopes_per_batch).
WINDOWS_BATCH = 20
WINDOWS_WITHIN_SECONDS = 0.05

_DELIVERIES = EnvelopeDecoder(WindowDelivery)

window_state = table("window_state", "Event-time window buckets, watermarks and detector state per partition")


class Windows:
    """Wires streams.steps.windows.apply to windows.input, its outputs and the window table."""

    def __init__(self) -> None:
        # The engine changes its metadata, indexes and expiry lists in place; buckets it copies itself.
        self.store = StagedTable(window_state, copy_reads=lambda key: not key.startswith("b:"))
        self.engine = WindowEngine(window_config(settings), self.store)

    async def handle(self, events: Sequence[faust.EventT[Any]]) -> None:
        now_ms = int(time.time() * 1000)
        output = EngineOutput()
        items = 0
        for event in events:
            deliveries = await decode_or_dead_letter(event, _DELIVERIES, stage="windows", reason_code="undecodable")
            if deliveries is None:
                continue
            self.store.at(event)
            items += apply(self.engine, event.message.partition, deliveries, now_ms, output)
        metrics.EVENTS_IN.labels("windows").inc(items)
        # Rows acknowledged by the broker before the state that produced them is persisted.
        await asyncio.gather(*await publish(output))
        faults.checkpoint("windows")
        await self.store.persist()
        for partition in {e.message.partition for e in events}:
            watermark = self.engine.watermark(partition)
            if watermark is not None:
                metrics.WATERMARK_SECONDS.labels(str(partition)).set(watermark / 1000)


@app.agent(windows_input_topic, name="windows")
async def windows(stream: faust.StreamT[bytes]) -> None:
    step = Windows()
    await run_batches(
        "windows",
        stream,
        step.handle,
        max_messages=envelopes_per_batch(WINDOWS_BATCH, settings.partitions),
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
    (payload,) = encode_envelopes([WindowDelivery(tick_ms=int(time.time() * 1000))])
    for partition in range(settings.partitions):
        await windows_input_topic.send(value=payload, partition=partition)
