"""A Faust table seen as a plain mapping, with writes staged until the outputs they produced are sent.

Why: (1) Faust's per-access table machinery (partition checks, changelog send per assignment, debug
logging) costs more than our state logic itself; reads here go straight to the in-memory data and
repeated writes to one key within a batch become one changelog record. (2) Order of durability:
the agents publish the rows a batch produced, wait for the broker to acknowledge them, and only
then persist the state changes. A crash in between replays the batch from the last committed
offset against the old state and re-publishes the same rows (the sinks are idempotent); the other
order could persist state whose rows were lost, and a replay would then find nothing to emit.
(3) Durability before the commit: Faust's own table writes go through the producer's buffer, and
its commit only waits 0.1 s for that buffer to drain (``ProducerBuffer.flush_atmost`` returns on
the first timeout), so under load it commits input offsets whose state changes were still
buffered; a crash then loses state for input that is never read again (seen: windows re-emitted
without comments after a restart). :meth:`StagedTable.persist` sends the changelog records itself
and waits for the broker's acknowledgement before the agent takes (and so acknowledges) its next
batch.

(4) A failed batch is replayed in-process (streams/agents/runner.py) against the state as it was:
values are never changed in place (the code copies what it changes, or the table hands out copies
of the keys it would change in place: `copy_reads`), so a failed attempt's changes never reach the
table, and :meth:`reset` forgets its staged writes. Changelog records that failed to send are sent
again by the next :meth:`persist` (the table's memory already holds them).

Keys are written to the changelog partition of the input partition that wrote them (Faust's rule:
a table partition follows its source topic partition), so the agent says which partition it is
processing (`at`).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import faust
import faust.utils.json as faust_utils_json
import msgspec
import orjson

from streams import metrics, state_parts
from streams.agents.common import Record, send_records
from streams.state_restore import BulkRestoreStore
from streams.windows.engine import _DELETED, WriteBuffer

_COPY_ENCODER = msgspec.msgpack.Encoder()
_COPY_DECODER = msgspec.msgpack.Decoder()


def _copy(value: Any) -> Any:
    """A deep copy of a JSON-like value (msgpack round trip: much faster than copy.deepcopy)."""
    if isinstance(value, dict | list):
        return _COPY_DECODER.decode(_COPY_ENCODER.encode(value))
    return value


#: Faust's json codec with orjson, as it calls it (faust.utils.json.dumps): byte-identical records.
_FAUST_ORJSON_OPTIONS = orjson.OPT_NON_STR_KEYS | orjson.OPT_UTC_Z


def _faust_json(value: Any) -> bytes:
    return orjson.dumps(value, option=_FAUST_ORJSON_OPTIONS)


Encoder = Callable[[Any], bytes | None]


def _changelog_encoders(table: faust.Table[str, Any]) -> tuple[Encoder, Encoder]:
    """How the table's keys and values become changelog bytes. For the json serializer (ours), orjson
    straight away, with the options Faust's codec passes it: Faust's layers (channel, schema,
    registry, codec) cost more than the encoding (3% of the worker's CPU). Anything else: Faust's way."""
    changelog = table.changelog_topic
    faust_json = getattr(faust_utils_json, "orjson", None) is not None  # Faust falls back to stdlib json
    key_encoder: Encoder = (
        _faust_json
        if faust_json and table.key_serializer == "json"
        else lambda key: changelog.prepare_key(key, table.key_serializer)[0]
    )
    value_encoder: Encoder = (
        _faust_json
        if faust_json and table.value_serializer == "json"
        else lambda value: changelog.prepare_value(value, table.value_serializer)[0]
    )
    return key_encoder, value_encoder


class StagedTable(WriteBuffer):
    """A WriteBuffer whose reads bypass Faust (the table's in-memory data) and whose
    :meth:`persist` writes the table and its changelog under the right partitions."""

    def __init__(self, table: faust.Table[str, Any], *, copy_reads: Callable[[str], bool] | None = None) -> None:
        """`copy_reads(key)`: whether reads of `key` hand out a copy, for code that changes the values
        it reads in place (the window engine's metadata and indexes). Code that copies what it
        changes itself (the thread tree, author counts, fingerprints) is spared the cost."""
        # Reads go to the memory store's own dict: the store's Mapping.get goes through __getitem__
        # and a KeyError for every miss (4% of the worker's CPU, most of it the thread tree's lookups).
        store = table.data
        super().__init__(store.data if isinstance(getattr(store, "data", None), dict) else store)
        self.table = table
        self._copy_reads = copy_reads
        self._owner: dict[str, int] = {}
        self._partition = -1
        #: Copies of stored values read in this batch (the same copy for every read of a key).
        self._read: dict[str, Any] = {}
        #: Changelog records written to memory whose send failed: sent first by the next persist().
        self._unsent: list[Record] = []
        self._declared = False
        self._encoders = _changelog_encoders(table)
        #: Keys whose changelog value is split into parts now (streams/state_parts.py): generation and
        #: part count, to delete those parts when the key is written again. Kept by the store, whose
        #: restore rebuilds it.
        self._split: dict[str, tuple[str, int]] = store.split if isinstance(store, BulkRestoreStore) else {}

    def at(self, event: faust.EventT[Any]) -> None:
        """Subsequent writes belong to `event`'s partition."""
        self._partition = event.message.partition

    def at_partition(self, partition: int) -> None:
        """Subsequent writes belong to input partition `partition`."""
        self._partition = partition

    def get(self, key: str, default: Any = None) -> Any:
        # MutableMapping.get would go through a KeyError for every miss: the hot path of the tree.
        if key in self._staged:
            value = self._staged[key]
            return default if value is _DELETED else value
        if key in self._read:
            return self._read[key]
        value = self.backing.get(key)
        if value is None:
            return default
        if self._copy_reads is None or not self._copy_reads(key):
            return value
        copied = self._read[key] = _copy(value)
        return copied

    def __getitem__(self, key: str) -> Any:
        value = self.get(key, _DELETED)
        if value is _DELETED:
            raise KeyError(key)
        return value

    def reset(self) -> None:
        """Forget the batch's staged writes and read copies (a failed attempt; see the runner)."""
        self._staged.clear()
        self._owner.clear()
        self._read.clear()

    def __setitem__(self, key: str, value: Any) -> None:
        super().__setitem__(key, value)
        self._owner[key] = self._partition

    def __delitem__(self, key: str) -> None:
        super().__delitem__(key)
        self._owner[key] = self._partition

    async def persist(self) -> None:
        """Apply the staged writes to the table and wait until the broker has their changelog records.

        The records go straight to the producer as record batches (`send_records`), serialised as
        Faust's own changelog writes are (so its recovery reads them back), without Faust's
        per-message channel machinery; the memory store keeps no persisted offsets, so Faust's send
        callback would do nothing here."""
        table = self.table
        changelog = table.changelog_topic
        encode_key, encode_value = self._encoders
        records = self._unsent
        data = self.backing
        for key, value in self.write_order():  # safe to crash in the middle of: see WriteBuffer
            partition = self._owner[key]
            if value is None:
                if key not in data:
                    continue  # created and deleted within the batch: never persisted
                del data[key]
                encoded = None  # a tombstone, as Faust writes it
            else:
                data[key] = value
                encoded = encode_value(value)
            previous = self._split.pop(key, None) if self._split else None
            if previous is None and (encoded is None or len(encoded) <= state_parts.SPLIT_ABOVE_BYTES):
                records.append((encode_key(key), encoded, partition))
                continue
            # Over one record's limit, or split before: streams/state_parts.py.
            written, split = state_parts.value_records(key, encoded, previous, encode_value)
            records.extend((encode_key(k), v, partition) for k, v in written)
            if split is not None:
                self._split[key] = split
                metrics.STATE_SPLIT_VALUES.labels(table.name).inc()
        self.reset()
        metrics.STATE_ENTRIES.labels(table.name).set(len(data))
        if not self._declared:
            # Faust declares changelog topics when the table starts; on a broker that is itself still
            # starting that can fail quietly, and a send to a missing topic waits for its metadata
            # for the producer's whole request timeout (20 minutes). Declaring is idempotent.
            await changelog.maybe_declare()
            self._declared = True
        sent = await send_records(table.app.producer, changelog.get_topic_name(), records)
        delivered = await asyncio.gather(*(future for _, _, future in sent))
        self._unsent = []
        store = table.data
        if isinstance(store, BulkRestoreStore):
            for (partition, count, _), metadata in zip(sent, delivered, strict=True):
                if metadata is not None and count:
                    store.advance(partition, metadata.offset + count - 1)
