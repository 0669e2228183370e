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

from typing import Any

import faust
from faust.streams import Stream
from faust.types import TableT

from streams.windows.engine import _DELETED, WriteBuffer


class StagedTable(WriteBuffer):
    """A WriteBuffer whose reads bypass Faust (the table's in-memory data) and whose flush writes
    the table under the right partition."""

    def __init__(self, table: TableT[str, Any]) -> None:
        super().__init__(table.data)
        self.table = table
        self._owner: dict[str, int] = {}
        self._events: dict[int, faust.EventT[Any]] = {}
        self._partition = -1

    def at(self, event: faust.EventT[Any]) -> None:
        """Subsequent writes belong to `event`'s partition."""
        self._partition = event.message.partition
        self._events[self._partition] = event

    def get(self, key: str, default: Any = None) -> Any:
        # MutableMapping.get would go through a KeyError for every miss: the hot path of the tree.
        if key in self._staged:
            value = self._staged[key]
            return default if value is _DELETED else value
        return self.backing.get(key, default)

    def __setitem__(self, key: str, value: Any) -> None:
        super().__setitem__(key, value)
        self._owner[key] = self._partition

    def __delitem__(self, key: str) -> None:
        super().__delitem__(key)
        self._owner[key] = self._partition

    def flush(self, stream: Stream[Any] | None = None) -> None:
        """Persist staged writes (changelog records), each under its partition's event."""
        assert stream is not None, "a StagedTable flushes within its agent's stream"
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
