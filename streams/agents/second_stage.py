"""second_stage: comments.enriched -> the borderline comments re-scored by the heavier model ->
comments.rescored (envelopes of newer row versions; the sink writes them into `comments`) and
comments.flagged (rows whose flags the second stage changed and that stay flagged).

Runs in the `second-stage` worker role only (`streams worker --second-stage`, or
STREAMS_WORKER_ROLE=second-stage): a consumer group of its own, so however far it lags, the
pipeline's own agents never wait for it. The model runs in a thread (numpy releases the GIL), so
the event loop keeps serving /health and /metrics meanwhile.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import faust
import threadpoolctl

from streams import faults, metrics, topics
from streams.agents.common import ENCODER, decode_or_dead_letter, send_envelopes
from streams.agents.runner import run_batches
from streams.app import app, enriched_topic, flagged_topic, rescored_topic, settings
from streams.batches import EnvelopeDecoder
from streams.enrich.flags import load_moderation_config
from streams.enrich.flags.second_stage import SecondStageScorer
from streams.models import EnrichedComment, FlagResult
from streams.steps.second_stage import second_look

AGENT = "second_stage"
#: Envelopes per batch: the model's cost is per comment, so small batches only add overhead.
BATCH_ENVELOPES = 8
WITHIN_SECONDS = 0.5

_ENRICHED_BATCH = EnvelopeDecoder(EnrichedComment)


@functools.cache
def scorer() -> SecondStageScorer:
    path = Path(settings.moderation_file) if settings.moderation_file else None
    return SecondStageScorer(load_moderation_config(path))


def warm_up() -> None:
    """Load the model before the worker starts (a config or install problem fails the start), with
    the BLAS threads it may use (settings.second_stage_threads: for the whole process, which runs
    nothing else that uses BLAS). The limit follows the first run: it reaches only the BLAS
    libraries loaded by then (numpy's and scipy's own OpenBLAS)."""
    scorer().rescore(["warm up"], [FlagResult(scores={}, flags=[], reasons={})])
    threadpoolctl.threadpool_limits(limits=settings.second_stage_threads, user_api="blas")


async def handle(events: Sequence[faust.EventT[Any]]) -> None:
    received: list[tuple[int, EnrichedComment]] = []
    for event in events:
        rows = await decode_or_dead_letter(event, _ENRICHED_BATCH, stage=AGENT)
        if rows is not None:
            received += [(event.message.partition, row) for row in rows]
    metrics.EVENTS_IN.labels(AGENT).inc(len(received))
    rows = [row for _, row in received]
    loop = asyncio.get_running_loop()
    rescored = await loop.run_in_executor(None, second_look, scorer(), rows)
    by_id = {(r.event.thread_id, r.event.comment_id, r.version): r for r in rescored}
    by_partition: dict[int, list[EnrichedComment]] = {}
    changed: list[EnrichedComment] = []
    for partition, row in received:
        new = by_id.get((row.event.thread_id, row.event.comment_id, row.version))
        if new is None:
            continue
        by_partition.setdefault(partition, []).append(new)
        before, after = set(row.flags.flags), set(new.flags.flags)
        for category in after - before:
            metrics.SECOND_STAGE_CHANGES.labels(category, "flagged").inc()
        for category in before - after:
            metrics.SECOND_STAGE_CHANGES.labels(category, "cleared").inc()
        if after != before and after:
            changed.append(new)
    sent = await send_envelopes(rescored_topic, by_partition, agent=AGENT, label=topics.RESCORED)
    for row in changed:
        sent.append(await flagged_topic.send(key=row.event.thread_id.encode(), value=ENCODER.encode(row)))
        metrics.EVENTS_OUT.labels(AGENT, topics.FLAGGED).inc()
    await asyncio.gather(*sent)
    faults.checkpoint(AGENT)


@app.agent(enriched_topic, name=AGENT)
async def second_stage(stream: faust.StreamT[bytes]) -> None:
    await run_batches(AGENT, stream, handle, max_messages=BATCH_ENVELOPES, within_seconds=WITHIN_SECONDS)
