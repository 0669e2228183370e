"""Which names (threads, text fingerprints) went untouched for a while: the schedule behind the
quiet-time retention (`STREAMS_STATE_QUIET_SECONDS`, by wall clock) and behind retiring threads the
partition's event time left behind (`STREAMS_STATE_RETENTION_SECONDS`, by event time).

Pure logic over a key-value store (a Faust Table in the worker). Names are listed in one bucket per
hour (of the caller's clock) in which they were touched, per scope (the caller's input partition,
so that each key lives in one changelog partition):

  {prefix}|scope        -> [hour, ...] sorted: the hours that have a bucket
  {prefix}|scope|hour   -> [name, ...] touched in that hour (stale for names touched since)

The caller keeps each name's last touch itself (beside the name's own state), tells `touch` when
that was, and checks it again for every name `due` hands back: a name is in the bucket of every
hour it was touched in, and only the last one counts.
"""

from __future__ import annotations

from collections.abc import Iterator, MutableMapping
from typing import Any

HOUR_MS = 3_600_000


class QuietSchedule:
    def __init__(self, store: MutableMapping[str, Any], prefix: str) -> None:
        self.store = store
        self.prefix = prefix

    def touch(self, scope: str, name: str, now_ms: int, last_touched_ms: int | None) -> None:
        """Note that `name` was touched at `now_ms` (last touched at `last_touched_ms`, None: never)."""
        hour = now_ms // HOUR_MS
        if last_touched_ms is not None and last_touched_ms // HOUR_MS == hour:
            return  # already in this hour's bucket
        index_key = f"{self.prefix}|{scope}"
        bucket_key = f"{index_key}|{hour}"
        owned = getattr(self.store, "owned", None)  # a WriteBuffer: append to the batch's own copy
        bucket = owned(bucket_key) if owned is not None else None
        if bucket is None:
            bucket = list(self.store.get(bucket_key) or [])
        bucket.append(name)
        self.store[bucket_key] = bucket
        hours = self.store.get(index_key) or []
        if hour not in hours:
            self.store[index_key] = sorted([*hours, hour])

    def due(self, scope: str, quiet_before_ms: int) -> Iterator[str]:
        """The names of the buckets whose whole hour is before `quiet_before_ms`, dropping those
        buckets: each a candidate the caller retires if its last touch is before that time too."""
        index_key = f"{self.prefix}|{scope}"
        hours = self.store.get(index_key) or []
        kept = [hour for hour in hours if (hour + 1) * HOUR_MS > quiet_before_ms]
        for hour in hours[: len(hours) - len(kept)]:
            bucket_key = f"{index_key}|{hour}"
            yield from self.store.get(bucket_key) or []
            if bucket_key in self.store:
                del self.store[bucket_key]
        if kept != hours:
            self.store[index_key] = kept
