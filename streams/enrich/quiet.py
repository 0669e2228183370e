"""Which names (threads, text fingerprints) went untouched for a while: the schedule behind the
quiet-time retention (`STREAMS_STATE_QUIET_SECONDS`, by wall clock) and behind retiring threads the
partition's event time left behind (`STREAMS_STATE_RETENTION_SECONDS`, by event time).

Pure logic over a key-value store (a Faust Table in the worker). Names are listed in one bucket per
hour (of the caller's clock) in which they were touched, per scope (the caller's input partition,
so that each key lives in one changelog partition). A bucket is cut into segments of at most
SEGMENT_NAMES names: a batch rewrites the segment it appends to, not the hour's whole list (one
list per hour grew with every name the hour saw, so each batch rewrote all of it to the changelog:
~120 KB per fingerprint-schedule record on average over a 100k replay, 20% of the state's bytes,
and past ~55k names in one scope-hour a record above the topics' 1 MiB message limit, which no
persist could send):

  {prefix}|scope            -> [hour, ...] sorted: the hours that have a bucket
  {prefix}|scope|hour|n     -> the number of the hour's last segment (absent: 0)
  {prefix}|scope|hour|k     -> [name, ...] segment k of the names touched in that hour (stale for
                               names touched since)
  {prefix}|scope|hour       -> [name, ...] the older, unsegmented form: still read and retired

The caller keeps each name's last touch itself (beside the name's own state), tells `touch` when
that was, and checks it again for every name `due` hands back: a name is in the bucket of every
hour it was touched in, and only the last one counts.
"""

from __future__ import annotations

from collections.abc import Iterator, MutableMapping
from typing import Any

HOUR_MS = 3_600_000
#: Names per bucket segment: what one touch rewrites at most (plus the batch's own names).
SEGMENT_NAMES = 512


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
        hour_key = f"{index_key}|{hour}"
        last_key = f"{hour_key}|n"
        segment = self.store.get(last_key, 0)
        segment_key = f"{hour_key}|{segment}"
        owned = getattr(self.store, "owned", None)  # a WriteBuffer: append to the batch's own copy
        names = owned(segment_key) if owned is not None else None
        if names is None:
            names = list(self.store.get(segment_key) or [])
        if len(names) >= SEGMENT_NAMES:
            segment += 1
            self.store[last_key] = segment
            segment_key, names = f"{hour_key}|{segment}", []
        names.append(name)
        self.store[segment_key] = names
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
            hour_key = f"{index_key}|{hour}"
            last_key = f"{hour_key}|n"
            segments = [f"{hour_key}|{k}" for k in range(self.store.get(last_key, 0) + 1)]
            for bucket_key in (hour_key, *segments):  # the older unsegmented form first
                if bucket_key in self.store:
                    yield from self.store[bucket_key]
                    del self.store[bucket_key]
            if last_key in self.store:
                del self.store[last_key]
        if kept != hours:
            self.store[index_key] = kept
