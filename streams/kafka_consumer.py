"""A Faust consumer that never commits an offset it has not processed.

faust-streaming 0.15 can commit past messages that no agent processed when partitions are
re-assigned (a restarted worker rejoining its group is enough), which loses them for good:

1. A batch fetched before a seek (to the committed offset, after a rebalance) is still delivered
   after it. Its first record moves the read position past the seek target; the records in
   between then count as an "offset gap", gaps count as processed when committing, and their
   real copies are dropped as already read.
2. A message skipped during a rebalance (flow stopped, or fetched in an earlier generation) is
   acknowledged as if processed, so the commit may jump past it before its re-read is processed.
3. The commit check lets one unprocessed offset at the head of a partition slip through.
4. An offset gap is recorded including the record that revealed it, so that record counts as
   processed before it is.

Seen before this module: 1 of 6 kill-and-restart runs lost 32 of 3,000 comments (in Kafka, not in
ClickHouse), all inside a "gap" Faust recorded right after the restart; with it, 8 of 8 lost none.

5. Records of an agent's input fetched while the tables are being restored from their changelogs
   reach the agent: after a restart the windows agent processed a batch against half-restored
   state, and the rest of the restore then overwrote part of what that batch had written.
6. Whatever else drops records between the fetcher and the agents (Faust breaks off a fetched
   batch when flow stops or the generation changes, and filters partitions paused meanwhile,
   without moving the fetch position back) ends in case 1: the next record is past the read
   position, and the offsets between count as a gap. Seen once after the fixes below, in a clean
   clone's kill-and-restart test: about 1,600 offsets (one fetch) of each of two partitions were
   committed with no comment of them processed, nothing dead-lettered and nothing logged.

Fixes, each the smallest change to the one method at fault:
- every seek is logged per partition (in the consumer thread, in the same step as the seek
  itself); records fetched before their partition's last seek are discarded (the seek moved the
  fetch position back, so they are fetched again), and the read position is reset to just before
  the seek target. Faust seeks every partition to its committed offset after each rebalance;
  one with nothing committed is sent back to the log start (records fetched from it before the
  rebalance would otherwise be dropped and never fetched again). A rebalance is not a mark by
  itself: aiokafka fetches from the new assignment before it tells listeners, so a mark there
  would discard records that are not fetched again;
- acknowledgements of messages from a previous generation or while flow is stopped are ignored
  (the message is read again after the seek; replays are harmless, the tables are idempotent);
- a commit waits for the head offset (the committed one, else where the last seek sent reading);
  a gap covers only the offsets that do not exist, and only once the fetch right after it was
  found, from its first offset, skipped the same offsets (`GapCheck`). Only a gap before the first
  record of a fetched batch is checked: within one batch the records are the log's own, so a hole
  there is real (transaction markers, compaction). A real gap costs one more fetch;
- while tables are restored (and until the first restore is complete), records of agents' inputs
  are discarded: the restore ends by seeking every input partition to its committed offset.
Select it with the broker URL scheme `streams+kafka://` (see streams.app).
"""

from __future__ import annotations

import threading
from collections.abc import AsyncIterator, Mapping
from typing import Any, NamedTuple

import aiokafka
from faust.transport import drivers
from faust.transport.consumer import RecordMap
from faust.transport.drivers import aiokafka as faust_aiokafka
from faust.types import TP
from faust.types.tuples import Message
from faust.utils.functional import consecutive_numbers
from intervaltree import IntervalTree

from streams import faults, metrics

SCHEME = "streams+kafka"


class _Seek(NamedTuple):
    seq: int
    #: Where reading resumes, or None for the log start.
    target: int | None


class SeekLog:
    """The last seek of each partition, numbered. Written by the consumer thread, read by the worker."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._seq = 0
        self._last: dict[TP, _Seek] = {}

    def mark(self, tp: TP, target: int | None) -> None:
        with self._lock:
            self._seq += 1
            self._last[tp] = _Seek(self._seq, target)

    def now(self) -> int:
        with self._lock:
            return self._seq

    def last(self, tp: TP) -> _Seek | None:
        return self._last.get(tp)


class FetchedRecords(dict[TP, Any]):
    """A fetched batch, stamped with the seek log's number at the moment it left the fetcher."""

    seq: int = 0


def next_commit_offset(acked: list[int], gaps: IntervalTree, committed: int | None) -> int | None:
    """The offset to commit for one partition, or None; consumes what it commits from `acked` and `gaps`.

    `acked` holds processed offsets (in any order), `gaps` offsets that do not exist, `committed`
    the next offset to process (None when the partition has no committed offset yet).
    """
    if not acked:
        return None
    if gaps:
        # Offsets that do not exist count as done, up to the highest acknowledged one.
        for interval in sorted(gaps.overlap(0, max(acked) + 1)):
            acked.extend(range(interval.begin, interval.end))
        gaps.chop(0, max(acked) + 1)
    acked[:] = sorted(set(acked))
    if committed is not None and acked[0] > committed:
        return None  # the head offset is not processed yet
    done = next(consecutive_numbers(acked))
    del acked[: len(done)]
    return int(done[-1]) + 1


class GapCheck:
    """Whether offsets skipped between the read position and a fetched record may count as missing.

    Records dropped between the fetcher and the agents look exactly like offsets that do not exist
    (the next record is past the read position). The difference shows on the next fetch from the
    first skipped offset: dropped records come back, missing offsets stay missing. Only that very
    fetch decides: if it was dropped too, the gap is read again.
    """

    DELIVER = "deliver"  # no gap
    READ_AGAIN = "read again"  # a new gap: fetch again from its first offset before it counts
    CONFIRMED = "confirmed"  # the next fetch skipped the same offsets: they do not exist
    RECOVERED = "recovered"  # the next fetch returned skipped records: they had been dropped

    def __init__(self) -> None:
        #: Per partition: the gap being read again, and the number of the fetch that found it.
        self._pending: dict[TP, tuple[tuple[int, int], int]] = {}

    def verdict(self, tp: TP, last_read: int | None, offset: int, fetch: int) -> str:
        """For the first record of `tp` in a fetched batch; `last_read` is the offset read last and
        `fetch` numbers the partition's fetched batches (one more per batch that holds records of it)."""
        pending = self._pending.pop(tp, None)
        if last_read is not None and offset > last_read + 1:
            gap = (last_read + 1, offset)
            if pending == (gap, fetch - 1):
                return self.CONFIRMED
            self._pending[tp] = (gap, fetch)
            return self.READ_AGAIN
        return self.RECOVERED if pending is not None and offset < pending[0][1] else self.DELIVER


#: How long one fetch may wait on the broker for data (Faust hard-codes 1,500 ms). The broker answers
#: a connection's requests in order, so a list-offsets request sent while a fetch is waiting is
#: answered only after it: each step of a rebalance's recovery (highwaters, earliest offsets, the
#: seek to committed offsets) waited up to the whole fetch wait, about 3 s per restart in all.
FETCH_MAX_WAIT_MS = 200


class SafeConsumerThread(faust_aiokafka.AIOKafkaConsumerThread):
    consumer: SafeConsumer

    def _create_worker_consumer(self, transport: Any) -> aiokafka.AIOKafkaConsumer:
        consumer = super()._create_worker_consumer(transport)
        consumer._fetch_max_wait_ms = FETCH_MAX_WAIT_MS  # read when the consumer starts its fetcher
        return consumer

    async def _fetch_records(
        self,
        consumer: aiokafka.AIOKafkaConsumer,
        active_partitions: set[TP],
        timeout: float | None = None,
        max_records: int | None = None,
    ) -> RecordMap:
        records = FetchedRecords(await super()._fetch_records(consumer, active_partitions, timeout, max_records))
        # No await between the fetcher handing the records over and this stamp.
        records.seq = self.consumer.seeks.now()
        return records

    async def seek_to_committed(self) -> Mapping[TP, int]:
        return await self.call_thread(self._seek_to_committed)  # type: ignore[no-any-return]

    async def _seek_to_committed(self) -> Mapping[TP, int]:
        # aiokafka's own seek_to_committed, with each seek logged in the same step as it happens.
        consumer = self._ensure_consumer()
        committed: dict[TP, int] = {}
        for tp in consumer.assignment():
            offset = await consumer.committed(tp)
            committed[tp] = offset
            if offset and offset > 0:
                self.consumer.seeks.mark(tp, offset)
                consumer._fetcher.seek_to(tp, offset)
            elif self.app.topics.acks_enabled_for(tp.topic):
                # An agent's input with nothing committed yet: reading starts over from the log
                # start (auto_offset_reset), where the records fetched so far came from. Changelogs
                # (no acks, no commits) stay where table recovery left them. The start is looked up
                # first so that the mark names it: a batch dropped before the first delivery is then
                # a gap like any other (GapCheck). If retention moves the start meanwhile, the
                # fetch resets to the new one and GapCheck confirms the offsets gone.
                start = (await consumer.beginning_offsets([tp]))[tp]
                self.consumer.seeks.mark(tp, start)
                consumer._fetcher.seek_to(tp, start)
        return committed

    async def _seek_wait(self, consumer: aiokafka.AIOKafkaConsumer, partitions: Mapping[TP, int]) -> None:
        for tp, offset in partitions.items():
            self.consumer.seeks.mark(tp, offset)
        await super()._seek_wait(consumer, partitions)

    def seek(self, partition: TP, offset: int) -> None:
        self.consumer.seeks.mark(partition, offset)
        super().seek(partition, offset)


class SafeConsumer(faust_aiokafka.Consumer):
    _thread: SafeConsumerThread

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.seeks = SeekLog()
        self._batch_seq = 0
        self._applied_seek: dict[TP, int] = {}
        self._gaps = GapCheck()
        self._fetches: dict[TP, int] = {}
        self._dropping = False  # the batch being delivered is dropped (fault injection only)
        #: Offsets the broker confirmed committing for this group, per partition (the next to read):
        #: read from it at each assignment, then raised by this process's successful commits.
        self._confirmed: dict[TP, int] = {}
        super().__init__(*args, **kwargs)

    async def _commit(self, offsets: Mapping[TP, int]) -> bool:
        # Faust records offsets as committed even when the commit failed (a rebalance under way):
        # what a replay would start from is only what the broker confirmed.
        done = await super()._commit(offsets)
        if done:
            assigned = self.assignment()  # the commit leaves out partitions no longer assigned
            for tp, offset in offsets.items():
                if tp in assigned and offset > self._confirmed.get(tp, -1):
                    self._confirmed[tp] = offset
        return bool(done)

    async def seek_to_committed(self) -> Mapping[TP, int]:
        committed = await super().seek_to_committed()
        for tp, offset in committed.items():  # read from the broker at this assignment
            if offset is not None and offset > self._confirmed.get(tp, -1):
                self._confirmed[tp] = offset
        return committed

    def confirmed_commit(self, tp: TP) -> int | None:
        """The newest committed offset of `tp` the broker confirmed (read at assignment or committed
        by this process): no replay of the group starts before it."""
        return self._confirmed.get(tp)

    def _new_consumer_thread(self) -> SafeConsumerThread:
        return SafeConsumerThread(self, loop=self.loop, beacon=self.beacon)

    async def _wait_next_records(self, timeout: float) -> tuple[RecordMap | None, set[TP] | None]:
        records, active = await super()._wait_next_records(timeout)
        self._batch_seq = records.seq if isinstance(records, FetchedRecords) else self.seeks.now()
        has_inputs = False
        for tp in records or ():
            self._fetches[tp] = self._fetches.get(tp, 0) + 1
            has_inputs = has_inputs or self.app.topics.acks_enabled_for(tp.topic)
        self._dropping = has_inputs and not self._recovering() and faults.drops_fetch()
        return records, active

    def _recovering(self) -> bool:
        """Tables are being restored from their changelogs (or were never restored yet)."""
        recovery = self.app.tables.recovery  # type: ignore[attr-defined]  # TableManager's, not on its ABC
        return bool(self.app.in_recovery) or not recovery.completed.is_set()

    async def getmany(self, timeout: float) -> AsyncIterator[tuple[TP, Message]]:
        stale: dict[TP, int] = {}
        held: dict[TP, int] = {}
        checked: set[TP] = set()  # partitions whose first record of this batch passed the gap check
        async for tp, message in super().getmany(timeout):
            is_input = self.app.topics.acks_enabled_for(tp.topic)  # an agent's input, not a changelog
            if self._dropping and is_input:
                continue  # STREAMS_FAULT_INJECT=fetch:N: as Faust drops a batch it breaks off
            if self._recovering() and is_input:
                # An agent would read half-restored tables. Fetch it again later: the seek also
                # makes the rest of this batch for the partition stale.
                if tp not in held:
                    await self.seek(tp, message.offset)
                held[tp] = held.get(tp, 0) + 1
                continue
            seek = self.seeks.last(tp)
            if seek is not None:
                if seek.seq > self._batch_seq:
                    stale[tp] = stale.get(tp, 0) + 1
                    continue  # fetched before this partition was repositioned: it comes again
                if self._applied_seek.get(tp) != seek.seq:
                    # The read position is the last offset read, so just before the seek target.
                    # (-1 before offset 0: Faust's own gap test skips only None and 0.)
                    self._read_offset[tp] = seek.target - 1 if seek.target is not None else None
                    self._applied_seek[tp] = seek.seq
            if is_input and tp not in checked:
                checked.add(tp)
                if not await self._gap_checked(tp, message.offset):
                    stale[tp] = stale.get(tp, 0) + 1
                    continue  # the seek back makes the rest of this batch's records of tp stale
            yield tp, message
        for tp, count in stale.items():
            self.log.info("Discarded %d records of %s fetched before it was repositioned", count, tp)
        for tp, count in held.items():
            self.log.info("Discarded %d records of %s fetched while tables were being restored", count, tp)

    async def _gap_checked(self, tp: TP, offset: int) -> bool:
        """Whether the record at `offset` may be delivered; if not, `tp` was sent back to re-read a gap."""
        last_read = self._read_offset.get(tp)
        verdict = self._gaps.verdict(tp, last_read, offset, self._fetches.get(tp, 0))
        if verdict == GapCheck.RECOVERED:
            metrics.CONSUMER_RECORDS_REREAD.labels(tp.topic).inc()
            self.log.warning("Records of %s fetched but never delivered came back on a second fetch", tp)
        if verdict not in (GapCheck.READ_AGAIN, GapCheck.CONFIRMED):
            return True
        assert last_read is not None  # a gap needs a read position
        first, last = last_read + 1, offset - 1
        if verdict == GapCheck.CONFIRMED:
            self.log.info(
                "Offsets %d-%d of %s do not exist (transaction markers, compaction or retention)", first, last, tp
            )
            return True
        self.log.info("Offsets %d-%d of %s were not delivered: reading them again", first, last, tp)
        await self.seek(tp, first)
        return False

    def ack(self, message: Message) -> bool:
        if message.generation_id != self.app.consumer_generation_id or not self.app.flow_control.is_active():
            # Skipped during a rebalance, or processed under a revoked assignment: it is read
            # again from the committed offset, and that copy's acknowledgement is the one that counts.
            message.acked = True
            self._unacked_messages.discard(message)
            return False
        return super().ack(message)

    async def _add_gap(self, tp: TP, offset_from: int, offset_to: int) -> None:
        # Called with the first offset missing and the offset of the record that revealed the gap:
        # only the offsets in between do not exist.
        committed = self._committed_offset[tp]
        if committed is not None:
            offset_from = max(offset_from, committed)
        if offset_from < offset_to:
            self._gap[tp].addi(offset_from, offset_to)
            self._gap[tp].merge_overlaps()

    def _new_offset(self, tp: TP) -> int | None:
        committed = self._committed_offset[tp]
        if committed is None:
            # Nothing committed yet (or not known since a rebalance): reading began at the last
            # seek's target, so that offset is the head a commit must start from.
            seek = self.seeks.last(tp)
            committed = seek.target if seek is not None else None
        offset = next_commit_offset(self._acked[tp], self._gap[tp], committed)
        if offset is not None:
            index = self._acked_index[tp]
            index.difference_update([o for o in index if o < offset])
        return offset


class SafeTransport(faust_aiokafka.Transport):
    Consumer = SafeConsumer


drivers.TRANSPORTS.aliases[SCHEME] = f"{__name__}:SafeTransport"
