"""A Faust table seen as a plain mapping, with writes staged until the outputs they produced are sent.

Why: (1) Faust's per-access table machinery (partition checks, changelog send per assignment, debug
logging) costs more than our state logic itself; reads here go straight to the in-memory data and
repeated writes to one key within a batch become one changelog record. (2) Order of durability:
the agents publish the rows a batch produced, wait for the broker to acknowledge them, and only
then persist the state changes. A crash in between replays the batch from the last committed
offset against the old state and re-publishes the same rows (the sinks are idempotent); the other
order could persist state whose rows were lost, and a replay would then find nothing to emit.

Keys are written to the changelog partition of the event that wrote them (Faust's rule), so the
agent says which partition it is processing (`at`) and `flush` replays each partition's writes with
one of that partition's events as the current event.
"""

from __future__ import annotations

from collections.abc import Iterator, MutableMapping
from typing import Any

import faust
from faust.streams import Stream
from faust.types import TableT

_DELETED = object()


class StagedTable(MutableMapping[str, Any]):
    def __init__(self, table: TableT[str, Any]) -> None:
        self.table = table
        self._staged: dict[str, Any] = {}
        self._owner: dict[str, int] = {}
        self._events: dict[int, faust.EventT[Any]] = {}
        self._partition = -1

    def at(self, event: faust.EventT[Any]) -> None:
        """Subsequent writes belong to `event`'s partition."""
        self._partition = event.message.partition
        self._events[self._partition] = event

    def __getitem__(self, key: str) -> Any:
        if key in self._staged:
            value = self._staged[key]
            if value is _DELETED:
                raise KeyError(key)
            return value
        return self.table.data[key]

    def get(self, key: str, default: Any = None) -> Any:
        try:
            return self[key]
        except KeyError:
            return default

    def __contains__(self, key: object) -> bool:
        if key in self._staged:
            return self._staged[key] is not _DELETED
        return key in self.table.data

    def __setitem__(self, key: str, value: Any) -> None:
        self._staged[key] = value
        self._owner[key] = self._partition

    def __delitem__(self, key: str) -> None:
        if key not in self:
            raise KeyError(key)
        self._staged[key] = _DELETED
        self._owner[key] = self._partition

    def __iter__(self) -> Iterator[str]:
        for key in self.table.data:
            if key not in self._staged:
                yield key
        for key, value in self._staged.items():
            if value is not _DELETED:
                yield key

    def __len__(self) -> int:
        return sum(1 for _ in self)

    @property
    def pending(self) -> int:
        return len(self._staged)

    def flush(self, stream: Stream[Any]) -> None:
        """Persist staged writes (changelog records), each under its partition's event."""
        by_partition: dict[int, list[str]] = {}
        for key, partition in self._owner.items():
            by_partition.setdefault(partition, []).append(key)
        # The take() buffer reads the current event too: put back whatever it was afterwards.
        previous = stream.current_event
        for partition, keys in by_partition.items():
            stream._set_current_event(self._events[partition])
            for key in keys:
                value = self._staged[key]
                if value is _DELETED:
                    if key in self.table.data:
                        del self.table[key]
                else:
                    self.table[key] = value
        stream._set_current_event(previous)
        self._staged.clear()
        self._owner.clear()
        self._events.clear()
