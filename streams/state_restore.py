"""A memory store that restores a table's changelog partitions in bulk, and remembers how far its
memory goes so that a rebalance never reads back what it already holds.

Why: Faust restores a memory table through its per-message machinery (fetcher, conductor, an
asyncio queue, a bookkeeping pass per record), about 8,000 changelog records/s on this machine. The
window and thread state write ~10 records per comment, so a worker restarted after 15,000 comments
spent 38 s restoring before it read its next comment, and a longer history takes minutes. Read here
with a consumer of its own, in record batches, they load at ~270,000 records/s (bench/RESULTS.md,
session 14).

And Faust's memory store has no persisted offsets, so when a rebalance leaves a partition where it
was (another process of `--processes N` joined or left), Faust reads that partition's changelog
again from where its last restore ended: everything this process wrote since. Here the store keeps
the offset of the newest record in memory (:meth:`advance`, from `StagedTable.persist`), and Faust
starts reading after it. That holds only while the partition stays: one that comes back after
another process held it is read from the start again (see :meth:`on_rebalance`).

The records are applied as Faust applies them (memory.Store.apply_changelog_batch): JSON keys and
values (Faust's json codec, orjson), a null value deletes the key, and each key remembers its
partition, so Faust's end-of-recovery clean-up drops keys of partitions this worker no longer holds.
Both ways (bulk here, Faust's recovery after it) rebuild values written as parts
(streams/state_parts.py).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from typing import Any

import faust.stores
import faust.utils.json as faust_json
from aiokafka import AIOKafkaConsumer
from aiokafka.structs import TopicPartition
from faust.stores import memory
from faust.types import TP, EventT

from streams import metrics, state_parts
from streams.kafka_security import aiokafka_options
from streams.settings import Settings

log = logging.getLogger(__name__)

#: The store URL scheme (streams.app sets ``store=SCHEME + "://"``).
SCHEME = "streams-memory"
#: How many records one fetch hands over: large, so the per-fetch cost is spread thin.
FETCH_RECORDS = 20_000
#: A restore logs its progress this often (seconds).
PROGRESS_EVERY_S = 5.0


class BulkRestoreStore(memory.Store[Any, Any]):
    """Faust's memory store plus persisted offsets and a bulk restore of newly assigned partitions."""

    #: The worker's settings (broker address, security): set by streams.app before the tables start.
    settings: Settings | None = None

    def __post_init__(self) -> None:
        super().__post_init__()
        #: Changelog partition -> offset of the newest record this memory holds.
        self._persisted: dict[TP, int] = {}
        #: The changelog partitions this table was active for after the last rebalance.
        self._actives: set[TP] = set()
        #: Keys whose changelog value is split into parts: (generation, count) (see StagedTable).
        self.split: dict[str, tuple[str, int]] = {}
        self._loader = state_parts.ChangelogLoader(self.data, self._key_partition, self.split)

    def persisted_offset(self, tp: TP) -> int | None:
        return self._persisted.get(tp)

    def set_persisted_offset(self, tp: TP, offset: int) -> None:
        if offset > self._persisted.get(tp, -1):
            self._persisted[tp] = offset

    def advance(self, partition: int, offset: int) -> None:
        """The broker acknowledged this table's changelog record `offset` on `partition`, whose
        change this memory already holds."""
        self.set_persisted_offset(TP(self.table.changelog_topic.get_topic_name(), partition), offset)

    async def on_rebalance(
        self, assigned: set[TP], revoked: set[TP], newly_assigned: set[TP], generation_id: int = 0
    ) -> None:
        for tp in revoked:
            # Faust drops the partition's keys after its recovery; a later assignment restores anew.
            self._persisted.pop(tp, None)
        changelog = self.table.changelog_topic.get_topic_name()
        active = {tp for tp in self.app.assignor.assigned_actives() if tp.topic == changelog}
        # A partition this process did not hold in the last assignment is restored whatever
        # `_persisted` says: a batch still in flight when it was revoked can persist (advance) after
        # the revoke, and Faust has dropped the keys it restored since, so skipping the restore would
        # run on what is left (seen: windows and a comment lost after a child was killed).
        missing = sorted(tp for tp in active if tp not in self._persisted or tp not in self._actives)
        if missing:
            await self._restore(missing)
        self._actives = active  # only once restored: a restore cut short by a new rebalance runs again

    async def _restore(self, tps: list[TP]) -> None:
        """Load every record of `tps` up to their current end, then persist their offsets. Faust's
        own recovery, which runs next, reads only what was written after that end."""
        if self.settings is None:
            return  # not wired (a Faust app other than streams.app): Faust restores as it always has
        started = time.monotonic()
        consumer = AIOKafkaConsumer(
            **aiokafka_options(self.settings),
            group_id=None,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            max_partition_fetch_bytes=8 * 1024 * 1024,
            fetch_max_bytes=64 * 1024 * 1024,
        )
        await consumer.start()
        try:
            partitions = [TopicPartition(tp.topic, tp.partition) for tp in tps]
            consumer.assign(partitions)
            ends = await consumer.end_offsets(partitions)
            # An explicit seek: seek_to_beginning right after assign() lost to the reset that assign()
            # starts (auto_offset_reset), and reading began at the end.
            starts = await consumer.beginning_offsets(partitions)
            for tp in partitions:
                consumer.seek(tp, starts[tp])
            pending = {tp for tp in partitions if ends[tp] > starts[tp]}
            applied, next_log = 0, started + PROGRESS_EVERY_S
            while pending:
                fetched = await consumer.getmany(*pending, timeout_ms=1000, max_records=FETCH_RECORDS)
                for tp, records in fetched.items():
                    applied += self._apply(tp.partition, (r for r in records if r.offset < ends[tp]))
                    if records and records[-1].offset >= ends[tp] - 1:
                        pending.discard(tp)
                for tp in list(pending):
                    if await consumer.position(tp) >= ends[tp]:
                        pending.discard(tp)
                if time.monotonic() >= next_log:
                    next_log += PROGRESS_EVERY_S
                    log.info("%s: restored %d changelog records so far", self.table.name, applied)
        finally:
            await consumer.stop()
        dropped = self._loader.leftover()
        if dropped:
            log.warning("%s: dropped %d parts no manifest claimed (a crash between them)", self.table.name, dropped)
        for tp in tps:
            end = ends[TopicPartition(tp.topic, tp.partition)]
            if end > 0:
                self.set_persisted_offset(tp, end - 1)
        seconds = time.monotonic() - started
        metrics.STATE_RESTORED_RECORDS.labels(self.table.name).inc(applied)
        metrics.STATE_RESTORE_SECONDS.labels(self.table.name).inc(seconds)
        metrics.STATE_ENTRIES.labels(self.table.name).set(len(self.data))
        log.info(
            "%s: restored %d changelog records of %d partitions in %.1f s (%d keys held)",
            self.table.name,
            applied,
            len(tps),
            seconds,
            len(self.data),
        )

    def _apply(self, partition: int, records: Iterable[Any]) -> int:
        """Apply changelog records in order: as memory.Store.apply_changelog_batch does."""
        loads, apply = faust_json.loads, self._apply_one
        applied = 0
        for record in records:
            applied += 1
            apply(loads(record.key), None if record.value is None else loads(record.value), partition)
        return applied

    def apply_changelog_batch(
        self, batch: Iterable[EventT[Any]], to_key: Callable[[Any], Any], to_value: Callable[[Any], Any]
    ) -> None:
        """Faust's recovery (what was written after a bulk restore): record by record, with parts."""
        for event in batch:
            value = None if event.message.value is None else to_value(event.value)
            self._apply_one(to_key(event.key), value, event.message.partition)

    def _apply_one(self, key: Any, value: Any, partition: int) -> None:
        try:
            self._loader.apply(key, value, partition)
        except state_parts.MissingPart as exc:  # a damaged changelog: the key is lost, not the worker
            log.error("%s: %s; the key is dropped", self.table.name, exc)
            self._loader.apply(key, None, partition)


def install(settings: Settings) -> str:
    """Register the store under :data:`SCHEME` for `settings`' broker; return the store URL."""
    BulkRestoreStore.settings = settings
    faust.stores.STORES.aliases[SCHEME] = f"{__name__}:BulkRestoreStore"
    return f"{SCHEME}://"
