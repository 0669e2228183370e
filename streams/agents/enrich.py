"""enrich: comments.valid -> thread placement, features, language, flags -> comments.authored
(and windows.input, see streams.steps.windows.FanOut);
authors: comments.authored (partitioned by author) -> author stats -> comments.enriched (+ comments.flagged).

Author stats need every comment of an author in one partition, hence the re-partitioned hop. Both
hops carry envelopes (streams/batches.py): one message per destination partition per batch.
"""

from __future__ import annotations

import asyncio
import functools
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import faust

from streams import faults, metrics, topics
from streams.agents.common import ENCODER, decode_or_dead_letter, send_dead_letter, send_envelopes
from streams.agents.runner import run_batches
from streams.agents.tablestore import StagedTable
from streams.app import (
    app,
    authored_topic,
    enriched_topic,
    flagged_topic,
    settings,
    table,
    valid_topic,
    windows_input_topic,
)
from streams.batches import Envelope, EnvelopeDecoder, envelopes_per_batch, group_by_partition, partition_of
from streams.enrich.authors import RetiredComments, Sealed, SealedThreads
from streams.enrich.flags import FlagScorer, load_moderation_config
from streams.enrich.language import detect_languages
from streams.ingest import Rejection
from streams.kafka_consumer import SafeConsumer
from streams.models import CommentEvent, EnrichedComment
from streams.steps.authors import count as count_authors
from streams.steps.authors import expire as expire_authors
from streams.steps.authors import forget as forget_authors
from streams.steps.enrich import EnrichStep, RawPositions, sources_ahead

#: Envelopes per batch with 4 partitions (each holds up to batches.ENVELOPE_MAX_ROWS comments of one
#: partition; scaled with the partition count: batches.envelopes_per_batch).
ENRICH_BATCH = 4
AUTHORS_BATCH = 8
ENRICH_WITHIN_SECONDS = 0.05

thread_state = table("thread_state", "Per-thread comment tree: parents, depths, waiting replies")
fingerprints = table("fingerprints", "Earliest posting time per author of a text fingerprint (spam signal)")
author_stats = table("author_stats", "Per-author counts: comments, flagged, threads, first seen")

_EVENTS = EnvelopeDecoder(CommentEvent)


class _EventEnvelopes:
    """comments.valid envelopes whole: the events and where ingest read them on comments.raw."""

    def decode(self, value: bytes) -> Envelope[CommentEvent]:
        return _EVENTS.decode_envelope(value)


_EVENT_ENVELOPES = _EventEnvelopes()
_ENRICHED_BATCH = EnvelopeDecoder(EnrichedComment)
_RETIRED = EnvelopeDecoder(RetiredComments)
#: The key of comments.authored envelopes that hold retirement notices, not rows.
RETIRED_KEY = b"retired"
#: thread_state key of each input partition's newest offset whose batch the tree persisted (+ partition).
PROCESSED_PREFIX = "po|"


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


def pause_fetching(consumer: Any, tps: set[faust.types.TP]) -> None:
    """Stop fetching `tps`, still delivering what was fetched for them already.

    Faust's `Consumer.pause_partitions` removes them from the *same* active-partitions set that a
    running `getmany` checks before it yields each fetched record, so the records of those
    partitions fetched but not yet yielded were skipped for good (aiokafka's position had moved
    past them): a 300k replay lost ~120k rows over 171 pauses. A new set leaves that iteration its
    own; the next fetch asks for the new one (faust-streaming 0.15: `_active_partitions`,
    `_paused_partitions`, which a rebalance keeps out of the active set)."""
    active = consumer._get_active_partitions()
    consumer._paused_partitions.update(tps)
    consumer._active_partitions = set(active) - tps


def resume_fetching(consumer: Any, tps: set[faust.types.TP]) -> None:
    """Fetch `tps` again (see pause_fetching)."""
    active = consumer._get_active_partitions()
    consumer._paused_partitions.difference_update(tps)
    consumer._active_partitions = set(active) | tps


class Enrich:
    """Wires streams.steps.enrich to comments.valid, comments.authored, windows.input and the tables."""

    def __init__(self) -> None:
        self.tree_store = StagedTable(thread_state)
        self.fingerprint_store = StagedTable(fingerprints)
        self.step = EnrichStep(
            self.tree_store,
            self.fingerprint_store,
            _scorer(),  # loaded by warm_up before the worker started
            settings.partitions,
            at_partition=self._at_partition,
            retention_ms=int(settings.state_retention_seconds * 1000),
            quiet_ms=int(settings.state_quiet_seconds * 1000),
        )
        # The last message read from each input partition, to tell the windows which ones are caught up.
        self.last_read: dict[str, faust.types.Message] = {}
        #: Input partitions paused for running ahead in event time (see align_sources).
        self.paused: set[faust.types.TP] = set()
        self.handled_at = time.monotonic()
        #: Retirement notices whose retirement is persisted, not yet acknowledged by the broker (kept
        #: across a failed attempt: its replay against the persisted tree retires nothing again).
        self.notices_due: list[RetiredComments] = []

    def _at_partition(self, partition: int) -> None:
        self.tree_store.at_partition(partition)
        self.fingerprint_store.at_partition(partition)

    def reset(self) -> None:
        self.tree_store.reset()
        self.fingerprint_store.reset()

    def _forget_revoked(self) -> None:
        """Stop reporting progress for input partitions a rebalance gave to another worker: their
        stale reports ("not read to the end") would keep the windows from ever going idle."""
        assigned = {tp.partition for tp in app.consumer.assignment() if tp.topic == valid_topic.get_topic_name()}
        for source in list(self.step.progress):
            if int(source.partition(":")[2]) not in assigned:
                del self.step.progress[source]
                self.step.advanced_at.pop(source, None)
                self.last_read.pop(source, None)

    def align_sources(self, pending: set[str]) -> None:
        """Pause the input partitions that ran ahead in event time (streams.steps.enrich.sources_ahead)
        and resume the others. Applied after every batch: Faust's own flow control re-activates a
        partition whose stream buffer drained, and a rebalance changes the assignment."""
        ahead = sources_ahead(self.step.progress, pending, int(settings.max_source_skew_seconds * 1000))
        topic = valid_topic.get_topic_name()
        pause = {faust.types.TP(topic, int(source.partition(":")[2])) for source in ahead}
        assigned = app.consumer.assignment()
        pause &= assigned
        if pause:
            pause_fetching(app.consumer, pause)
        resume = (self.paused - pause) & assigned
        if resume:
            resume_fetching(app.consumer, resume)
        metrics.SOURCE_PAUSES.labels("enrich").inc(len(pause - self.paused))
        metrics.SOURCES_PAUSED.labels("enrich").set(len(pause))
        self.paused = pause

    def resume_if_stalled(self, quiet_seconds: float) -> None:
        """Resume every paused partition once no batch came for `quiet_seconds`: the pauses are
        decided after each batch, so if the partitions still read ran dry (read to their end just as
        the paused ones were not yet due) nothing would ever decide to resume them."""
        if self.paused and time.monotonic() - self.handled_at >= quiet_seconds:
            resume_fetching(app.consumer, self.paused & app.consumer.assignment())
            self.paused = set()
            metrics.SOURCES_PAUSED.labels("enrich").set(0)

    async def handle(self, events: Sequence[faust.EventT[Any]]) -> None:
        batches: list[tuple[int, list[CommentEvent]]] = []
        envelope_of: dict[int, faust.EventT[Any]] = {}  # id(comment) -> its envelope, for dead letters
        # The newest input offset per partition of the batches persisted so far, and of this one.
        persisted: dict[int, int | None] = {}
        newest: dict[int, int] = {}
        raw = RawPositions(self.tree_store)
        for event in events:
            partition, offset = event.message.partition, event.message.offset
            if partition not in persisted:
                persisted[partition] = self.tree_store.get(f"{PROCESSED_PREFIX}{partition}")
            newest[partition] = max(offset, newest.get(partition, offset))
            decoded = await decode_or_dead_letter(event, _EVENT_ENVELOPES, stage="enrich")
            if decoded is not None:
                comments = decoded.items
                raw.note(partition, comments, decoded.raw)
                batches.append((partition, comments))
                self.last_read[f"valid:{partition}"] = event.message
                envelope_of.update((id(c), event) for c in comments)
        # Staged first, so persisted first: a crash in the middle of the persist leaves no retirement
        # of this batch in the changelog without it (the changelog keeps each partition's order).
        for partition, offset in newest.items():
            before = persisted[partition]
            if before is None or offset > before:  # a replay after a crash reads offsets persisted already
                self._at_partition(partition)
                self.tree_store[f"{PROCESSED_PREFIX}{partition}"] = offset
        for partition, key, offset in raw.advanced():
            self._at_partition(partition)
            self.tree_store[key] = offset
        now_ms = int(time.time() * 1000)
        out = self.step.run(batches, now_ms=now_ms)
        metrics.EVENTS_IN.labels("enrich").inc(out.received)
        metrics.STATE_RETIRED.labels("thread_state").inc(out.retired_state)
        metrics.STATE_RETIRED.labels("fingerprints").inc(out.retired_fingerprints)
        for comment, reason in out.retired:
            envelope = envelope_of[id(comment)]
            persisted_offset = persisted.get(envelope.message.partition)
            if (persisted_offset is not None and envelope.message.offset <= persisted_offset) or raw.read_before(
                comment
            ):
                # Read again after a crash or a failed attempt (here, or ingest's copies sent again):
                # processed (and counted) the first time, before the persisted tree retired it. Not a
                # dead letter.
                metrics.REPLAYED_RETIRED.labels("enrich").inc()
                continue
            await send_dead_letter(
                envelope,
                Rejection("retired", reason),
                stage="enrich",
                raw=ENCODER.encode(comment),
                item=f"{comment.comment_id}|{comment.event_id}",
            )
        self._forget_revoked()
        # A paused partition counts as read to its end when it is: aiokafka keeps fetching it (the pause
        # is Faust's), so its highwater stays current. Counting every paused one as unread made the
        # last report of a replay hold the windows for the idle timeout (2 minutes) after the end.
        done = caught_up(self.last_read)
        out.fan_out.add_progress(self.step.progress, done, self.step.advanced_at, now_ms)
        self.align_sources(set(self.step.progress) - done)
        self.handled_at = time.monotonic()
        # An author's comments go to one comments.authored partition (their stats live there).
        by_author = group_by_partition(out.rows, lambda r: partition_of(r.event.author, settings.partitions))
        sent = await send_envelopes(authored_topic, by_author, agent="enrich", label=topics.AUTHORED)
        deliveries = out.fan_out.by_partition
        sent += await send_envelopes(windows_input_topic, deliveries, agent="enrich", label=topics.WINDOWS_INPUT)
        await asyncio.gather(*sent)  # rows acknowledged by the broker before state is persisted
        faults.checkpoint("enrich")
        await self.tree_store.persist()
        await self.fingerprint_store.persist()
        # Notices only now, on the rows' partitions: each author's counts read one after every row of
        # the comments it retires, and no later row of those comments (the persisted tree refuses
        # them), which is what lets the counts drop their thread keys (streams.enrich.authors).
        self.notices_due += out.retired_authors
        if self.notices_due:
            notices = group_by_partition(self.notices_due, lambda n: partition_of(n.author, settings.partitions))
            await asyncio.gather(
                *await send_envelopes(authored_topic, notices, agent="enrich", label=topics.AUTHORED, key=RETIRED_KEY)
            )
            self.notices_due = []


#: The enrich agent's wiring in this process, for the timer below (None before the agent starts).
_running_enrich: list[Enrich] = []


@app.timer(interval=1.0)
async def resume_stalled_sources() -> None:
    for step in _running_enrich:
        step.resume_if_stalled(quiet_seconds=2.0)


@app.agent(valid_topic, name="enrich")
async def enrich(stream: faust.StreamT[bytes]) -> None:
    step = Enrich()
    _running_enrich[:] = [step]
    await run_batches(
        "enrich",
        stream,
        step.handle,
        max_messages=envelopes_per_batch(ENRICH_BATCH, settings.partitions),
        within_seconds=ENRICH_WITHIN_SECONDS,
        reset=step.reset,
    )


class Authors:
    """Wires streams.steps.authors to comments.authored, comments.enriched, comments.flagged and its table."""

    def __init__(self) -> None:
        self.store = StagedTable(author_stats)
        self.sealed = SealedThreads()
        #: The partitions `sealed` was last rebuilt for (from the table, when the assignment changes).
        self.sealed_for: set[int] | None = None
        #: Sealed keys this batch deletes, by partition: pending again if the attempt fails.
        self.expiring: list[tuple[int, list[tuple[str, Sealed]]]] = []

    def reset(self) -> None:
        self.store.reset()
        for partition, keys in self.expiring:
            self.sealed.add(partition, -1, keys)  # due again with the next attempt
        self.expiring = []

    def _expire_sealed(self) -> int:
        """Delete the thread keys sealed by notices that the group's committed offsets have passed."""
        topic = authored_topic.get_topic_name()
        consumer = app.consumer
        assigned = {tp.partition for tp in consumer.assignment() if tp.topic == topic}
        if assigned != self.sealed_for:
            # A start or a rebalance: the keys sealed in the partitions now held, wherever (and
            # whenever) they were sealed, are in the restored table with their notices' positions.
            self.sealed = SealedThreads.of_store(self.store.backing, assigned)
            self.sealed_for = assigned
        if not isinstance(consumer, SafeConsumer):
            return 0  # no confirmed commits to go by: keep them sealed
        expired = 0
        for partition in sorted(self.sealed.pending):
            due = self.sealed.due(partition, consumer.confirmed_commit(faust.types.TP(topic, partition)))
            if due:
                self.expiring.append((partition, due))
                self.store.at_partition(partition)
                expired += expire_authors(self.store, due)
        return expired

    async def handle(self, events: Sequence[faust.EventT[Any]]) -> None:
        by_partition: dict[int, list[EnrichedComment]] = {}
        received = 0
        forgotten = self._expire_sealed()
        sealed: list[tuple[int, int, list[tuple[str, Sealed]]]] = []
        for event in events:
            if event.message.key == RETIRED_KEY:
                notices = await decode_or_dead_letter(event, _RETIRED, stage="authors")
                if notices is not None:
                    self.store.at(event)
                    keys: list[tuple[str, Sealed]] = []
                    at = (event.message.partition, event.message.offset)
                    forgotten += forget_authors(self.store, notices, keys, at=at)
                    sealed.append((*at, keys))
                continue
            comments = await decode_or_dead_letter(event, _ENRICHED_BATCH, stage="authors")
            if comments is None:
                continue
            received += len(comments)
            self.store.at(event)
            by_partition.setdefault(event.message.partition, []).extend(count_authors(self.store, comments))
        metrics.EVENTS_IN.labels("authors").inc(received)
        metrics.STATE_RETIRED.labels("author_stats").inc(forgotten)  # member keys and expired thread keys
        sent = await send_envelopes(enriched_topic, by_partition, agent="authors", label=topics.ENRICHED)
        # comments.flagged keeps one message per comment: it is read by people and tools, not agents.
        for rows in by_partition.values():
            for row in rows:
                if not row.flags.flags:
                    continue
                sent.append(await flagged_topic.send(key=row.event.thread_id.encode(), value=ENCODER.encode(row)))
                metrics.EVENTS_OUT.labels("authors", topics.FLAGGED).inc()
                for category in row.flags.flags:
                    metrics.FLAGS.labels(category).inc()
        await asyncio.gather(*sent)
        faults.checkpoint("authors")
        await self.store.persist()
        self.expiring = []
        for partition, offset, keys in sealed:  # persisted: expired once the commits pass them
            self.sealed.add(partition, offset, keys)


@app.agent(authored_topic, name="authors")
async def authors(stream: faust.StreamT[bytes]) -> None:
    step = Authors()
    await run_batches(
        "authors",
        stream,
        step.handle,
        max_messages=envelopes_per_batch(AUTHORS_BATCH, settings.partitions),
        within_seconds=ENRICH_WITHIN_SECONDS,
        reset=step.reset,
    )
