"""The engine's state in a key-value store: staged writes (`WriteBuffer`) and per-step bucket reads.

`WriteBuffer` lets a caller publish an engine step's output before persisting the state behind it;
`_Buckets` / `_Series` cache the minute indexes and buckets one step reads (see "Store layout" in
`streams.windows.engine`).
"""

from __future__ import annotations

from collections.abc import Iterator, MutableMapping
from typing import Any, Final

from streams.windows.engine.kinds import _H


class _Deleted:
    """Marks a staged deletion in a WriteBuffer."""


_DELETED: Final = _Deleted()


class WriteBuffer(MutableMapping[str, Any]):
    """Stages writes over a store (e.g. a Faust Table) until :meth:`flush`.

    Lets the caller publish an EngineOutput before persisting the state that produced it::

        out = engine.process(...)          # engine = WindowEngine(config, buffer)
        await publish(out)                 # rows, late events, alerts
        buffer.flush()                     # now write the table (whole values, in order)

    Written back in :meth:`write_order`: values in the order of their *last* write, deletions
    after all of them. A crash may persist only a prefix of a flush; the engine relies on these
    two rules for such a prefix to be safe to replay the batch on. A partition's meta (its
    watermark) is the last value written by every step, so it is never persisted ahead of the
    buckets and records that step changed; deletions only drop state the watermark has passed, so
    one persisted ahead of the meta would lose items a replay cannot re-add (seen before: a restart
    restored a watermark past windows whose buckets were lost, and their replayed comments became
    late events). A deletion lost in a crash only leaves an unused key behind.
    """

    def __init__(self, backing: MutableMapping[str, Any]) -> None:
        self.backing = backing
        self._staged: dict[str, Any] = {}

    def __getitem__(self, key: str) -> Any:
        if key in self._staged:
            value = self._staged[key]
            if value is _DELETED:
                raise KeyError(key)
            return value
        return self.backing[key]

    def get(self, key: str, default: Any = None) -> Any:
        # Not MutableMapping.get: it raises and catches a KeyError for every miss. Reads still go
        # through the backing's __getitem__ (a store may hand out copies there).
        if key in self._staged:
            value = self._staged[key]
            return default if value is _DELETED else value
        backing = self.backing
        return backing[key] if key in backing else default  # noqa: SIM401 (see above)

    def __setitem__(self, key: str, value: Any) -> None:
        self._staged.pop(key, None)  # moves the key to the end: the order of last writes
        self._staged[key] = value

    def __delitem__(self, key: str) -> None:
        if key not in self:
            raise KeyError(key)
        self._staged.pop(key, None)
        self._staged[key] = _DELETED

    def owned(self, key: str) -> Any:
        """The value this batch has written for `key` (None if none): the batch's own object, which
        the writer may change in place before writing it again. Anything else read from the store
        must be copied before a change (the stored value stays as it was until the batch persists)."""
        value = self._staged.get(key)
        return None if value is _DELETED else value

    def __contains__(self, key: object) -> bool:
        if key in self._staged:
            return self._staged[key] is not _DELETED
        return key in self.backing

    def __iter__(self) -> Iterator[str]:
        for key in self.backing:
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

    def write_order(self) -> list[tuple[str, Any]]:
        """The staged (key, value) pairs in the order to persist them; value None is a deletion
        (stores never hold None)."""
        values = [(k, v) for k, v in self._staged.items() if v is not _DELETED]
        return values + [(k, None) for k, v in self._staged.items() if v is _DELETED]

    def flush(self) -> None:
        """Apply the staged writes and deletions to the backing store, in :meth:`write_order`."""
        for key, value in self.write_order():
            if value is None:
                if key in self.backing:
                    del self.backing[key]
            else:
                self.backing[key] = value
        self._staged.clear()

    def discard(self) -> None:
        """Forget the staged writes (what a crash before flush() amounts to)."""
        self._staged.clear()


Bucket = dict[str, list[Any]]


class _Buckets:
    """Read-through caches for one engine step: per-minute key indexes and bucket series.

    Bucket existence is answered from the minute index (shared by every key of that minute), so a
    step reads only buckets that exist -- a sweep touches the same minutes for many keys/windows.
    """

    __slots__ = ("_indexes", "_partition", "_series", "_store")

    def __init__(self, store: MutableMapping[str, Any], partition: int) -> None:
        self._store = store
        self._partition = partition
        self._series: dict[tuple[str, str], _Series] = {}
        self._indexes: dict[tuple[str, int], dict[str, int]] = {}

    def index(self, kind: str, minute: int) -> dict[str, int]:
        """Keys that have a bucket of ``kind`` in ``minute``."""
        return _index(self._store, self._partition, self._indexes, kind, minute)

    def series(self, kind: str, key: str) -> _Series:
        series = self._series.get((kind, key))
        if series is None:
            series = self._series[(kind, key)] = _Series(self._store, self._partition, self._indexes, kind, key)
        return series


def _index(
    store: MutableMapping[str, Any],
    partition: int,
    cache: dict[tuple[str, int], dict[str, int]],
    kind: str,
    minute: int,
) -> dict[str, int]:
    index = cache.get((kind, minute))
    if index is None:
        index = cache[(kind, minute)] = store.get(f"i:{partition}:{kind}:{minute}") or {}
    return index


class _Series:
    """The buckets of one (kind, key), cached for one engine step.

    Holds the step's index cache, not the _Buckets owner: no reference cycle, so a finished step
    is freed at once instead of waiting for the cyclic GC.
    """

    __slots__ = ("_indexes", "_key", "_kind", "_partition", "_prefix", "_store", "buckets")

    def __init__(
        self,
        store: MutableMapping[str, Any],
        partition: int,
        indexes: dict[tuple[str, int], dict[str, int]],
        kind: str,
        key: str,
    ) -> None:
        self._store = store
        self._partition = partition
        self._indexes = indexes
        self._kind = kind
        self._key = key
        self._prefix = f"b:{partition}:{kind}:"
        self.buckets: dict[int, Bucket | None] = {}

    def get(self, minute: int) -> Bucket | None:
        buckets = self.buckets
        if minute in buckets:
            return buckets[minute]
        value = None
        if self._key in _index(self._store, self._partition, self._indexes, self._kind, minute):
            value = self._store.get(f"{self._prefix}{minute}:{self._key}")
        buckets[minute] = value
        return value

    def existing(self, minute: int) -> Bucket | None:
        """Like get() for a minute the index already listed this key in."""
        buckets = self.buckets
        if minute in buckets:
            return buckets[minute]
        value: Bucket | None = self._store.get(f"{self._prefix}{minute}:{self._key}")
        buckets[minute] = value
        return value

    def pairs(self, first: int, last: int) -> list[tuple[int, Bucket]]:
        """(minute, bucket) of the non-empty minutes in [first, last], ascending."""
        out: list[tuple[int, Bucket]] = []
        for minute in range(first, last + _H, _H):
            bucket = self.get(minute)
            if bucket:
                out.append((minute, bucket))
        return out
