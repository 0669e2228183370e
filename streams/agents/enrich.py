"""enrich: comments.valid -> thread placement, features, language, flags -> comments.authored
(and windows.input, see streams.agents.windows.FanOut);
authors: comments.authored (keyed by author) -> author stats -> comments.enriched (+ comments.flagged).

Author stats need every comment of an author in one partition, hence the re-keyed hop.
"""

from __future__ import annotations

import asyncio
import functools
import time
from pathlib import Path

import faust
import msgspec

from streams import metrics, topics
from streams.agents.common import ENCODER, concrete, decode_or_dead_letter, timed
from streams.agents.tablestore import StagedTable
from streams.agents.windows import FanOut
from streams.app import app, authored_topic, enriched_topic, flagged_topic, settings, table, valid_topic
from streams.enrich import authors as author_state
from streams.enrich.compose import enrich_placements, note_fingerprint, with_author_stats
from streams.enrich.flags import FlagScorer, load_moderation_config
from streams.enrich.language import detect_languages
from streams.enrich.text import text_features
from streams.enrich.thread import Placement, ThreadTree
from streams.models import CommentEvent, EnrichedComment

ENRICH_BATCH = 500
ENRICH_WITHIN_SECONDS = 0.05

thread_state = table("thread_state", "Per-thread comment tree: parents, depths, waiting replies")
fingerprints = table("fingerprints", "Earliest posting time per author of a text fingerprint (spam signal)")
author_stats = table("author_stats", "Per-author counts: comments, flagged, threads, first seen")

_EVENT = msgspec.json.Decoder(CommentEvent)
_ENRICHED = msgspec.json.Decoder(EnrichedComment)


@functools.cache
def _scorer() -> FlagScorer:
    """The worker's scorer (one per process: the enrich agent runs one instance)."""
    path = Path(settings.moderation_file) if settings.moderation_file else None
    return FlagScorer(load_moderation_config(path))


def warm_up() -> None:
    """Load the agent's scorer and the language model now rather than in the first batch; the
    worker calls this before it starts, then freezes what is loaded (see cli)."""
    _scorer().warm_up()
    detect_languages(["warm up"])


def caught_up(last_read: dict[str, faust.types.Message]) -> set[str]:
    """The input partitions read to their end (as far as the consumer knows): nothing more to send."""
    done = set()
    for source, message in last_read.items():
        try:
            highwater = app.consumer.highwater(message.tp)
        except AssertionError:  # aiokafka's "Partition is not assigned": revoked by a rebalance since
            continue  # it was read; crashing here would lose the batch in flight
        if highwater is not None and message.offset + 1 >= highwater:
            done.add(source)
    return done


@app.agent(valid_topic, name="enrich")
async def enrich(stream: faust.StreamT[bytes]) -> None:
    tree_store = StagedTable(thread_state)
    fingerprint_store = StagedTable(fingerprints)
    tree = ThreadTree(tree_store)
    scorer = _scorer()  # loaded by warm_up before the worker started
    # Newest event time sent per input partition, reported to the windows after each batch.
    progress: dict[str, int] = {}
    # The last message read from each input partition, to tell the windows which ones are caught up.
    last_read: dict[str, faust.types.Message] = {}
    async for events in concrete(stream).take_events(ENRICH_BATCH, within=ENRICH_WITHIN_SECONDS):
        metrics.EVENTS_IN.labels("enrich").inc(len(events))
        metrics.BATCH_SIZE.labels("enrich").observe(len(events))
        with timed("enrich"):
            now_ms = int(time.time() * 1000)
            placements: list[Placement] = []
            sources: list[str] = []  # the valid-topic partition each placement came from
            features = []
            duplicates = []
            for event in events:
                tree_store.at(event)
                fingerprint_store.at(event)
                comment = await decode_or_dead_letter(event, _EVENT, stage="enrich")
                if comment is None:
                    continue
                source = f"valid:{event.message.partition}"
                posted_ms = int(comment.posted_at.timestamp() * 1000)
                progress[source] = max(posted_ms, progress.get(source, posted_ms))
                last_read[source] = event.message
                for placement in tree.place(comment, now_ms=now_ms):
                    feats = text_features(placement.event.body)
                    sources.append(source)
                    placements.append(placement)
                    features.append(feats)
                    posted = int(placement.event.posted_at.timestamp() * 1000)
                    duplicates.append(
                        note_fingerprint(fingerprint_store, feats.fingerprint, placement.event.author, posted)
                    )
            sent = []
            fan_out = FanOut()
            for row, source in zip(
                enrich_placements(placements, features, duplicates, scorer=scorer), sources, strict=True
            ):
                sent.append(await authored_topic.send(key=row.event.author.encode(), value=ENCODER.encode(row)))
                thread_id, comment_id = row.event.thread_id, row.event.comment_id
                routes = fan_out.add(row, source, tree.window_routes(thread_id, comment_id))
                tree.set_window_routes(thread_id, comment_id, routes)
            fan_out.add_progress(progress, caught_up(last_read))
            sent.extend(await fan_out.send())
            await asyncio.gather(*sent)  # rows acknowledged by the broker before state is persisted
            await tree_store.persist()
            await fingerprint_store.persist()
            metrics.EVENTS_OUT.labels("enrich", topics.AUTHORED).inc(len(placements))


@app.agent(authored_topic, name="authors")
async def authors(stream: faust.StreamT[bytes]) -> None:
    store = StagedTable(author_stats)
    async for events in concrete(stream).take_events(ENRICH_BATCH, within=ENRICH_WITHIN_SECONDS):
        metrics.EVENTS_IN.labels("authors").inc(len(events))
        with timed("authors"):
            sent = []
            for event in events:
                store.at(event)
                comment = await decode_or_dead_letter(event, _ENRICHED, stage="authors")
                if comment is None:
                    continue
                e = comment.event
                stats = author_state.observe(
                    store,
                    author=e.author,
                    thread_id=e.thread_id,
                    comment_id=e.comment_id,
                    posted_ms=int(e.posted_at.timestamp() * 1000),
                    flagged=bool(comment.flags.flags),
                )
                row = with_author_stats(comment, stats)
                payload = ENCODER.encode(row)
                sent.append(await enriched_topic.send(key=e.thread_id.encode(), value=payload))
                metrics.EVENTS_OUT.labels("authors", topics.ENRICHED).inc()
                if row.flags.flags:
                    sent.append(await flagged_topic.send(key=e.thread_id.encode(), value=payload))
                    metrics.EVENTS_OUT.labels("authors", topics.FLAGGED).inc()
                    for category in row.flags.flags:
                        metrics.FLAGS.labels(category).inc()
            await asyncio.gather(*sent)
            await store.persist()
