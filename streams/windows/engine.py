"""Event-time window engine: pure, restartable, idempotent; state lives in a caller-supplied store.

Why not Faust's windowed tables: they expire windows by *wall clock* even with
``relative_to_field``, so replaying a 2018 archive closes every window at once and late events
vanish. This engine only ever compares event times with event times (except for the explicit idle
rule below).

Window kinds (all aligned to UTC minutes, half-open ``[start, end)``)::

    thread_1m          key thread_id   tumbling 1 min
    author_1m          key author      tumbling 1 min
    category_1m        key category    tumbling 1 min, one per distinct flag (unflagged items: none)
    thread_trend_10m   key thread_id   hopping: 10-min windows every minute (an item is in 10)

Each window row: comments (distinct comment_ids), distinct_authors, flagged_comments (>= 1 flag),
flagged (category -> comments), mean_toxicity, max_depth, and

    velocity      = comments / window length in minutes            (comments per minute)
    acceleration  = velocity(window) - velocity(same kind+key, window starting 1 minute earlier)

The earlier window's velocity is 0 when it had no comments. Both are pure functions of the set of
comments, so they do not depend on arrival order. For thread_trend_10m this equals
``(comments in the newest minute - comments in the minute that slid out) / 10``.

Watermark, lateness, retention, versions (per input partition)::

    event time  ─────────────────────────────────────────────────────────────────────────────►
                12:00        12:01              12:06:30                       13:01
                [ thread_1m  )                                                   │
                             ▲ end              ▲ max event time seen            │
                                                                                 │
      W = max event time - allowed lateness (5 min) = 12:01:30  >= end  → window emitted, version 1
      an event for 12:00:xx arriving now (W < end + retention)  → window updated, version 2
      once W >= end + retention (12:01 + 1 h = 13:01)             → closed for good:
          that event is returned as a LateEvent (late_events table) and no window changes

* ``W`` only moves forward. A window is emitted when ``W >= end`` (windows without comments are
  never emitted). Items no older than the allowed lateness therefore never cause corrections.
* An item is accepted while ``W < (end of its minute) + retention`` -- the minute's end is the end
  of the item's earliest window, so for thread_trend_10m either all 10 windows take the item or
  none (one LateEvent per (comment, kind), matching the late_events sort key).
* An accepted item that lands in an already-emitted window re-emits that window (and, for
  acceleration, the window one minute later) with ``version + 1`` -- only if the values changed.
  A window that had no comments when the watermark passed it is emitted late with version 1.
* State is deleted once no accepted item can touch it any more (a bucket once
  ``W >= minute end + retention + what later windows/detectors still need from it``: 10 min for
  trend windows, M for sliding detectors, the 60-min toxicity baseline for thread_1m), so the
  store holds about retention + lookback of data per partition.

Idempotency (at-least-once delivery): window state is kept as per-minute buckets of members keyed
by comment_id. A redelivered comment replaces its own entry; if the entry is unchanged nothing is
written or emitted (an edited comment updates its entry and re-emits as a correction). Hence a
restarted engine re-processing items already in the changelog-backed store emits *no new
version*. If the changelog lost the last writes (crash between emitting and persisting), the
engine re-emits the *same version with identical values* (at worst, for a correction whose input
write was lost, a higher version with identical values); ReplacingMergeTree collapses both.
Redelivering an item whose minute is already closed for good gives a LateEvent only if its bucket
was already deleted (it cannot be told apart from a genuinely late item any more). A comment's
posted_at is its creation time and assumed never to change (a changed one would sit in two minutes).

Outputs vs state: :meth:`WindowEngine.process` writes the store while it runs, before the caller
publishes the rows it returns. If a crash persists the state but loses the rows, a redelivery finds
the items applied and emits nothing: those rows would be lost. Either run Faust with
``processing_guarantee="exactly_once"`` or give the engine a :class:`WriteBuffer` over the table,
publish the outputs, then ``flush()``: a crash before the flush replays as same-version rows.

Idle partitions: ``tick(partition, now_ms)`` advances the watermark of a partition on which no
item arrived for ``idle_timeout_ms`` of *wall-clock* time::

    quiet = now - max(last arrival on the partition, first time THIS engine instance saw it)
    if quiet >= idle_timeout:  W = max(W, max_event_time + 10 min + (quiet - idle_timeout))

so W first jumps past the end of every window that holds the newest event (what arrived is taken as
complete: a replayed archive's last windows appear seconds after the replay, not minutes) and then
moves on with wall time; a straggler for those windows is a correction (version + 1). A continuous
replay (items keep arriving) never triggers it, whatever the event times are. Counting quiet time
only from when *this instance* first saw the partition means downtime or a rebalance is never
mistaken for idleness (a restarted engine with a backlog would otherwise close an hour of windows
before reading the backlog); call :meth:`WindowEngine.resume` when a partition is (re)assigned to a
long-lived engine for the same reason.

Routing: author/category/detector windows need every item of their key in one place, but the
input topic is partitioned by thread. :func:`route` lists the ``(kind, key)`` pairs an item must be
delivered to; re-key onto a topic keyed ``route_key(kind, key)`` and call :meth:`process` once per
delivery, with the partition the delivery was read from.

Edits and deletions: a window counts each comment as its latest version. An edit can change the
routes (flags, so categories; text, so the spam fingerprint): the caller delivers the new version
to its routes and ``remove=True`` to the routes only the previous version had. A deleted comment is
removed from all of them. A removal from an emitted window is a correction like any other (a
window left without comments is re-emitted with zero counts); one beyond the horizon is a LateEvent.

Store layout (all values JSON plain data, every key includes the partition, whole values are
written back after every change)::

    p:{p}                          {"max","wm","closed","arr"}   event max, watermark, last emitted
                                   boundary, last arrival (wall ms)
    a:{p}                          {kind: [minute_ms, ...]}      minutes that have buckets
    i:{p}:{kind}:{minute}          {key: 1}                      keys with a bucket in that minute
    b:{p}:{kind}:{minute}:{key}    {comment_id: [author, flags, toxicity, depth, posted_at_ms, thread]}
    e:{p}:{kind}:{start}:{key}     {"v": version}   only for windows corrected at least once
    x:{p}                          [[boundary_ms, store_key], ...]  e: records and when to drop them
    d:{p}:{detector}:{key}         {"ep": [[first_ms, last_ms, alert_id], ...]}  detector episodes

A first emission keeps no record: the watermark passing the window's end *is* the record, and a
correction compares the window's values before and after the bucket change (so "changed" never
needs the emitted values). Writes of derived state precede the bucket write they derive from.

Output times are aware UTC datetimes; ``emitted_at``/``received_at``/``detected_at`` are the
caller's ``now_ms``.

Faust wiring note: a Faust Table may only be written during stream iteration (it writes the
changelog to the current event's partition), so ``tick`` must run while handling a message of
that partition -- e.g. a periodic heartbeat record sent to every partition of the windows topic.
"""

from __future__ import annotations

import math
from bisect import bisect_left, bisect_right, insort
from collections.abc import Iterable, Iterator, MutableMapping
from datetime import datetime
from typing import Any, Final

import msgspec

from streams.windows.detectors import (
    AUTHOR_FLOOD,
    PILE_ON,
    SPAM_WAVE,
    TOXICITY_SPIKE,
    Alert,
    DetectorConfig,
    Member,
    dt_to_ms,
    find_episode,
    ms_to_dt,
    prune_episodes,
    scan_sliding,
    sliding_alert,
    sliding_predicate,
    sliding_window_ms,
    toxicity_alert,
    toxicity_spike_check,
)

__all__ = [
    "AUTHOR_1M",
    "CATEGORY_1M",
    "KINDS",
    "MINUTE_MS",
    "PILE_ON_KIND",
    "ROUTE_KINDS",
    "SPAM_WAVE_KIND",
    "THREAD_1M",
    "THREAD_TREND_10M",
    "WINDOW_KINDS",
    "EngineOutput",
    "LateEvent",
    "WindowConfig",
    "WindowEngine",
    "WindowInput",
    "WindowRow",
    "WriteBuffer",
    "parse_route_key",
    "route",
    "route_key",
]

MINUTE_MS: Final = 60_000

THREAD_1M: Final = "thread_1m"
AUTHOR_1M: Final = "author_1m"
CATEGORY_1M: Final = "category_1m"
THREAD_TREND_10M: Final = "thread_trend_10m"
#: Detector-only kinds: bucketed like windows, never emitted as activity_windows rows.
PILE_ON_KIND: Final = PILE_ON
SPAM_WAVE_KIND: Final = SPAM_WAVE

WINDOW_KINDS: Final = (THREAD_1M, AUTHOR_1M, CATEGORY_1M, THREAD_TREND_10M)
ROUTE_KINDS: Final = (*WINDOW_KINDS, PILE_ON_KIND, SPAM_WAVE_KIND)
#: Minutes (1-minute buckets) per window of each kind; 0 = detector-only kind.
KINDS: Final[dict[str, int]] = {
    THREAD_1M: 1,
    AUTHOR_1M: 1,
    CATEGORY_1M: 1,
    THREAD_TREND_10M: 10,
    PILE_ON_KIND: 0,
    SPAM_WAVE_KIND: 0,
}
#: Sliding detectors evaluated when a minute of their route kind closes.
_SLIDING: Final[dict[str, str]] = {AUTHOR_1M: AUTHOR_FLOOD, PILE_ON_KIND: PILE_ON, SPAM_WAVE_KIND: SPAM_WAVE}

_H: Final = MINUTE_MS
#: How far an idle partition's watermark jumps past its newest event: the longest window.
IDLE_FLUSH_MS: Final = max(KINDS.values()) * MINUTE_MS


# ------------------------------------------------------------------------------------------- types


# gc=False: these structs hold only plain values, so they can never be part of a reference cycle;
# untracked, they cost the cyclic GC nothing when a consumer holds many of them.


class WindowInput(msgspec.Struct, frozen=True, kw_only=True, gc=False):
    """One comment as the window engine sees it (``posted_at_ms``: event time, epoch ms UTC)."""

    comment_id: str
    thread_id: str
    author: str
    parent_author: str | None = None
    posted_at_ms: int
    flags: list[str] = []
    toxicity: float = 0.0
    depth: int = 0
    fingerprint: str = ""
    #: The comment was deleted: it leaves every window (see "Edits and deletions").
    deleted: bool = False


class WindowRow(msgspec.Struct, kw_only=True, gc=False):
    """One ``activity_windows`` row (field order = column order)."""

    kind: str
    key: str
    window_start: datetime
    window_end: datetime
    comments: int
    distinct_authors: int
    flagged_comments: int
    flagged: dict[str, int]
    mean_toxicity: float
    max_depth: int
    velocity: float
    acceleration: float
    version: int
    emitted_at: datetime


class LateEvent(msgspec.Struct, kw_only=True, gc=False):
    """One ``late_events`` row: an item that arrived after its windows of ``window_kind`` closed for good."""

    comment_id: str
    thread_id: str
    author: str
    posted_at: datetime
    watermark: datetime
    window_kind: str
    received_at: datetime


class EngineOutput(msgspec.Struct, kw_only=True):
    windows: list[WindowRow] = []
    late: list[LateEvent] = []
    alerts: list[Alert] = []

    def extend(self, other: EngineOutput) -> None:
        self.windows.extend(other.windows)
        self.late.extend(other.late)
        self.alerts.extend(other.alerts)

    def __bool__(self) -> bool:
        return bool(self.windows or self.late or self.alerts)


class WindowConfig(msgspec.Struct, frozen=True, kw_only=True):
    """Engine timing. ``retention_ms`` is measured from a window's end to the watermark."""

    allowed_lateness_ms: int = 5 * MINUTE_MS
    retention_ms: int = 60 * MINUTE_MS
    idle_timeout_ms: int = 30_000
    #: An upstream source whose event time has not advanced for this long no longer holds the
    #: watermark back (it went quiet; a live stream's sources do not all carry traffic).
    source_idle_ms: int = 120_000
    #: How many upstream sources report progress (0: unknown). Until that many have been heard on a
    #: partition, its watermark stays put for up to ``source_idle_ms`` after this instance first saw
    #: the partition: a source not read yet (a backlog after a restart) may hold the oldest items.
    upstream_sources: int = 0
    detectors: DetectorConfig = msgspec.field(default_factory=DetectorConfig)

    def __post_init__(self) -> None:
        if self.allowed_lateness_ms < 0 or self.retention_ms < 0:
            raise ValueError("allowed_lateness_ms and retention_ms must be >= 0")
        if self.idle_timeout_ms <= 0:
            raise ValueError("idle_timeout_ms must be > 0")


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

    def __setitem__(self, key: str, value: Any) -> None:
        self._staged.pop(key, None)  # moves the key to the end: the order of last writes
        self._staged[key] = value

    def __delitem__(self, key: str) -> None:
        if key not in self:
            raise KeyError(key)
        self._staged.pop(key, None)
        self._staged[key] = _DELETED

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


# ----------------------------------------------------------------------------------------- routing


def route(item: WindowInput) -> list[tuple[str, str]]:
    """Every ``(kind, key)`` an item must be delivered to (deterministic order).

    pile_on gets replies to someone else only (a self-reply cannot be a pile-on); spam_wave gets
    items that have a fingerprint. author_flood rides on author_1m, toxicity_spike on thread_1m.
    """
    pairs = [(THREAD_1M, item.thread_id), (AUTHOR_1M, item.author), (THREAD_TREND_10M, item.thread_id)]
    pairs.extend((CATEGORY_1M, category) for category in sorted(set(item.flags)))
    if item.parent_author and item.parent_author != item.author:
        pairs.append((PILE_ON_KIND, item.parent_author))
    if item.fingerprint:
        pairs.append((SPAM_WAVE_KIND, item.fingerprint))
    return pairs


def route_key(kind: str, key: str) -> str:
    """Message key on the re-keyed topic; one (kind, key) always lands in one partition."""
    return f"{kind}:{key}"


def parse_route_key(value: str) -> tuple[str, str]:
    kind, sep, key = value.partition(":")  # kinds never contain ':', keys may
    if not sep or kind not in KINDS:
        raise ValueError(f"not a window route key: {value!r}")
    return kind, key


def _route_ok(kind: str, key: str, item: WindowInput) -> bool:
    if kind in (THREAD_1M, THREAD_TREND_10M):
        return key == item.thread_id
    if kind == AUTHOR_1M:
        return key == item.author
    if kind == CATEGORY_1M:
        return key in item.flags
    if kind == PILE_ON_KIND:
        return key == item.parent_author and key != item.author
    return bool(item.fingerprint) and key == item.fingerprint  # SPAM_WAVE_KIND


# ------------------------------------------------------------------------------------------ engine


def _floor(ms: int) -> int:
    return ms - ms % _H


_MINUTE_DT: dict[int, datetime] = {}


def _minute_dt(ms: int) -> datetime:
    """ms_to_dt for window boundaries, memoised: a sweep formats the same minutes many times."""
    dt = _MINUTE_DT.get(ms)
    if dt is None:
        if len(_MINUTE_DT) >= 50_000:
            _MINUTE_DT.clear()
        dt = _MINUTE_DT[ms] = ms_to_dt(ms)
    return dt


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


class WindowEngine:
    """See the module docstring. One instance may serve any number of partitions."""

    def __init__(self, config: WindowConfig, store: MutableMapping[str, Any]) -> None:
        self.config = config
        self._store = store
        self._lateness = config.allowed_lateness_ms
        self._retention = config.retention_ms
        det = config.detectors
        self._sliding_ms = {d: sliding_window_ms(d, det) for d in _SLIDING.values()}
        self._sliding_pred = {d: sliding_predicate(d, det) for d in _SLIDING.values()}
        tox = det.toxicity_spike
        # How long after a bucket's own minute + retention it is still needed: by later windows
        # (10-min trend windows, acceleration of the next window), by sliding detectors looking back
        # M minutes, by toxicity baselines looking back, and to keep episodes for chaining.
        self._keep: dict[str, int] = {
            THREAD_1M: max(_H, tox.lookback_ms, tox.span_ms + _H),
            AUTHOR_1M: max(_H, self._sliding_ms[AUTHOR_FLOOD] + _H),
            CATEGORY_1M: _H,
            THREAD_TREND_10M: 10 * _H,
            PILE_ON_KIND: self._sliding_ms[PILE_ON] + _H,
            SPAM_WAVE_KIND: self._sliding_ms[SPAM_WAVE] + _H,
        }
        self._det_span = {**self._sliding_ms, TOXICITY_SPIKE: tox.span_ms}
        # First wall time this *instance* saw each partition: downtime is never idleness.
        self._session: dict[int, int] = {}

    # -------------------------------------------------------------------------------- public API

    def process(
        self,
        partition: int,
        kind: str,
        key: str,
        item: WindowInput,
        now_ms: int,
        source: str | None = None,
        *,
        remove: bool = False,
    ) -> EngineOutput:
        """Apply one delivery ``(kind, key, item)`` read from ``partition`` at wall time ``now_ms``.

        ``source`` names the upstream partition the item came from (see :meth:`progress`);
        ``remove`` takes the comment out of the window (deleted, or no longer on this route)."""
        if kind not in KINDS:
            raise ValueError(f"unknown window kind {kind!r}; expected one of {', '.join(KINDS)}")
        if not remove and not _route_ok(kind, key, item):
            raise ValueError(f"item {item.comment_id!r} is not routed to ({kind!r}, {key!r}); see route()")
        store = self._store
        out = EngineOutput()
        self._session.setdefault(partition, now_ms)
        mkey = f"p:{partition}"
        t = item.posted_at_ms
        meta: dict[str, int] | None = store.get(mkey)
        if meta is None:
            wm = t - self._lateness
            meta = {"max": t, "wm": wm, "closed": _floor(wm), "arr": now_ms}
        minute = _floor(t)
        flags = sorted(set(item.flags)) if item.flags else []
        entry = [item.author, flags, item.toxicity, item.depth, t, item.thread_id]
        bkey = f"b:{partition}:{kind}:{minute}:{key}"
        members: dict[str, list[Any]] | None = store.get(bkey)
        too_late = meta["wm"] >= minute + _H + self._retention
        if remove and not too_late and (members is None or item.comment_id not in members):
            pass  # not in this window (never was, or already removed)
        elif not remove and members is not None and members.get(item.comment_id) == entry:
            # Redelivery of an applied item. A crash in the middle of writing the state back may have
            # kept this bucket but not its index entries: check them (no write when they are there).
            if not too_late:
                self._register(partition, kind, minute, key)
        elif too_late:
            out.late.append(
                LateEvent(
                    comment_id=item.comment_id,
                    thread_id=item.thread_id,
                    author=item.author,
                    posted_at=ms_to_dt(t),
                    watermark=ms_to_dt(meta["wm"]),
                    window_kind=kind,
                    received_at=ms_to_dt(now_ms),
                )
            )
        else:
            closed = meta["closed"]
            before: Bucket | None = None  # the bucket before this item, for corrections
            if members is None:
                members = {}
            else:
                # A new dict rather than a change in place: the stored bucket stays as it was until
                # the batch is persisted, so a failed batch replays against it (StagedTable).
                members = dict(members)
                if minute < closed:
                    before = dict(members)
            if remove:
                del members[item.comment_id]
            else:
                members[item.comment_id] = entry
                # Also for a bucket that exists: it may have been emptied, or restored without its
                # index entries (see _register).
                self._register(partition, kind, minute, key)
            if minute < closed:
                # derived state (version records, episodes) is written before the bucket: if a crash
                # persists only a prefix of these writes, a version number is never reused.
                self._correct(partition, kind, key, minute, t, closed, now_ms, out, before, members)
            store[bkey] = members
        meta["arr"] = now_ms
        if t > meta["max"]:
            meta["max"] = t
        if source is not None:
            self._note_source(meta, source, t, now_ms)
        self._raise_watermark(partition, meta, now_ms, out)
        store[mkey] = meta
        return out

    def progress(
        self, partition: int, source: str, event_ms: int, now_ms: int, *, caught_up: bool = False
    ) -> EngineOutput:
        """An upstream partition (``source``) has sent everything up to event time ``event_ms``;
        ``caught_up``: its consumer has read it to the end (nothing more to send for now).

        When items reach this partition from several upstream partitions that are consumed at
        different speeds (a replayed archive, a rebalance), the newest event seen here says little:
        the watermark is then the minimum over the live sources -- those whose event time advanced
        in the last ``source_idle_ms`` -- minus the allowed lateness. A caught-up source still holds
        it: being read to the end says nothing about what its own upstream (ingest) has not written
        yet. Caught up only matters for idleness: while a live source that is *not* caught up is
        behind the newest event here, the partition is not idle (its items are on their way).
        Without sources it is the newest event here, as before.
        """
        out = EngineOutput()
        self._session.setdefault(partition, now_ms)
        mkey = f"p:{partition}"
        meta: dict[str, Any] | None = self._store.get(mkey)
        if meta is None:
            meta = {"max": event_ms, "wm": event_ms - self._lateness, "closed": _floor(event_ms - self._lateness)}
            meta["arr"] = now_ms
        self._note_source(meta, source, event_ms, now_ms, caught_up)
        self._raise_watermark(partition, meta, now_ms, out)
        self._store[mkey] = meta
        return out

    @staticmethod
    def _note_source(meta: dict[str, Any], source: str, event_ms: int, now_ms: int, caught_up: bool = False) -> None:
        """Record a source as [newest event time, wall time it last advanced, caught up]."""
        sources = dict(meta.get("src") or {})
        seen = sources.get(source)
        if seen is None or event_ms > seen[0]:
            sources[source] = [event_ms, now_ms, int(caught_up)]
        else:
            sources[source] = [seen[0], seen[1], int(caught_up)]
        meta["src"] = sources

    def _live_sources(self, meta: dict[str, Any], now_ms: int) -> list[list[int]]:
        """The sources whose event time advanced within ``source_idle_ms``: [event time, advanced, caught up]."""
        sources: dict[str, list[int]] = meta.get("src") or {}
        return [s for s in sources.values() if now_ms - s[1] < self.config.source_idle_ms]

    def _raise_watermark(self, partition: int, meta: dict[str, Any], now_ms: int, out: EngineOutput) -> None:
        heard = len(meta.get("src") or ())
        waited = now_ms - self._session.get(partition, now_ms)
        if heard < self.config.upstream_sources and waited < self.config.source_idle_ms:
            return  # a source not heard yet may hold older items than any seen so far
        base = min([meta["max"], *(s[0] for s in self._live_sources(meta, now_ms))])
        if base - self._lateness > meta["wm"]:
            meta["wm"] = base - self._lateness
            if _floor(meta["wm"]) > meta["closed"]:
                self._advance(partition, meta, now_ms, out)

    def tick(self, partition: int, now_ms: int) -> EngineOutput:
        """Idle handling (see module docstring); call every few seconds per partition."""
        out = EngineOutput()
        mkey = f"p:{partition}"
        meta: dict[str, int] | None = self._store.get(mkey)
        session = self._session.setdefault(partition, now_ms)
        if meta is None:
            return out
        quiet = now_ms - max(meta["arr"], session)
        if quiet < self.config.idle_timeout_ms:
            return out
        if any(s[0] < meta["max"] and not (len(s) > 2 and s[2]) for s in self._live_sources(meta, now_ms)):
            return out  # a slower upstream source is still sending: quiet here is not the end of its data
        # Idle: take everything seen so far as complete (every window holding the newest event closes),
        # then keep moving with wall time. A straggler later becomes a correction, not a loss.
        candidate = meta["max"] + IDLE_FLUSH_MS + quiet - self.config.idle_timeout_ms
        if candidate <= meta["wm"]:
            return out
        meta["wm"] = candidate
        self._advance(partition, meta, now_ms, out)
        self._store[mkey] = meta
        return out

    def resume(self, partition: int, now_ms: int) -> None:
        """Restart the idle clock of a partition, e.g. when it is (re)assigned to this worker."""
        self._session[partition] = now_ms

    def watermark(self, partition: int) -> int | None:
        """Current watermark of a partition (epoch ms), for lag metrics; None before any item."""
        meta: dict[str, int] | None = self._store.get(f"p:{partition}")
        return None if meta is None else meta["wm"]

    # ------------------------------------------------------------------------------ bookkeeping

    def _register(self, partition: int, kind: str, minute: int, key: str) -> None:
        """Index a bucket: its key under its minute (``i:``), the minute under its kind (``a:``).

        Each entry is checked on its own rather than inferred from the other, so that state restored
        from a partly persisted batch (see WriteBuffer) is repaired by the batch's redelivery."""
        ikey = f"i:{partition}:{kind}:{minute}"
        index: dict[str, int] = self._store.get(ikey) or {}
        if key not in index:
            index[key] = 1
            self._store[ikey] = index
        akey = f"a:{partition}"
        active: dict[str, list[int]] = self._store.get(akey) or {}
        minutes = active.get(kind, [])
        at = bisect_left(minutes, minute)
        if at == len(minutes) or minutes[at] != minute:
            minutes.insert(at, minute)
            active[kind] = minutes
            self._store[akey] = active

    def _delete(self, key: str) -> None:
        if key in self._store:
            del self._store[key]

    # ------------------------------------------------------------------------------ watermark

    def _advance(self, partition: int, meta: dict[str, int], now_ms: int, out: EngineOutput) -> None:
        """Emit windows / run detectors for minutes the watermark closed, then expire old state."""
        old = meta["closed"]
        new = _floor(meta["wm"])
        if new <= old:
            return
        store = self._store
        akey = f"a:{partition}"
        active: dict[str, list[int]] = store.get(akey) or {}
        buckets = _Buckets(store, partition)
        emitted_at = ms_to_dt(now_ms)

        # 1. windows whose end is in (old, new], per (kind, key) in start order. For each key, the
        #    minutes it has buckets in, from one before the earliest such window (acceleration) on.
        for kind in WINDOW_KINDS:
            minutes = active.get(kind)
            if not minutes:
                continue
            span = KINDS[kind] * _H
            present: dict[str, list[int]] = {}
            for b in minutes[bisect_left(minutes, old - span) : bisect_right(minutes, new - _H)]:
                for key in buckets.index(kind, b):
                    present.setdefault(key, []).append(b)
            for key in sorted(present):
                self._emit_windows(partition, kind, key, present[key], old, new, emitted_at, out, buckets)

        # 2. sliding detectors over the items of each minute that closed, looking back M minutes.
        for kind, detector in _SLIDING.items():
            minutes = active.get(kind)
            if not minutes:
                continue
            first_closing = bisect_right(minutes, old - _H)
            end = bisect_right(minutes, new - _H)
            if first_closing == end:
                continue
            closing: dict[str, list[int]] = {}  # key -> its minutes that closed now
            for b in minutes[first_closing:end]:
                for key in buckets.index(kind, b):
                    closing.setdefault(key, []).append(b)
            # the minutes each closing key has buckets in, looking back M (set ops: most keys,
            # e.g. unique fingerprints, have nothing else)
            lookback: dict[str, list[int]] = {key: [] for key in closing}
            for b in minutes[bisect_left(minutes, _floor(old - self._sliding_ms[detector])) : end]:
                for key in buckets.index(kind, b).keys() & closing.keys():
                    lookback[key].append(b)
            min_items = self._sliding_pred[detector][1]
            for key in sorted(closing):
                if len(lookback[key]) == 1:  # a lone bucket: often too small to fire at all
                    bucket = buckets.series(kind, key).existing(lookback[key][0])
                    if bucket is None or len(bucket) < min_items:
                        continue
                for b in closing[key]:
                    self._detect_sliding(partition, detector, kind, key, b, b + _H, now_ms, out, buckets, lookback[key])

        # 3. expiry: buckets nothing can touch any more, their window records and detector state.
        changed = False
        for kind in KINDS:
            minutes = active.get(kind)
            if not minutes:
                continue
            cut = bisect_right(minutes, new - _H - self._retention - self._keep[kind])
            if not cut:
                continue
            for b in minutes[:cut]:
                ikey = f"i:{partition}:{kind}:{b}"
                index = store.get(ikey) or {}
                for key in index:
                    self._delete(f"b:{partition}:{kind}:{b}:{key}")
                    self._prune_detectors(partition, kind, key, new)
                self._delete(ikey)
            rest = minutes[cut:]
            if rest:
                active[kind] = rest
            else:
                del active[kind]
            changed = True
        if changed:
            if active:
                store[akey] = active
            else:
                del store[akey]
        xkey = f"x:{partition}"
        pending: list[list[Any]] | None = store.get(xkey)
        if pending and pending[0][0] <= new:
            due = bisect_right(pending, [new, "\U0010ffff"])
            for _at, rkey in pending[:due]:
                self._delete(rkey)
            if due < len(pending):
                store[xkey] = pending[due:]
            else:
                del store[xkey]
        meta["closed"] = new

    def _prune_detectors(self, partition: int, kind: str, key: str, closed: int) -> None:
        detector = TOXICITY_SPIKE if kind == THREAD_1M else _SLIDING.get(kind)
        if detector is None:
            return
        dkey = f"d:{partition}:{detector}:{key}"
        state: dict[str, list[Any]] | None = self._store.get(dkey)
        if state is None:
            return
        # Accepted items are newer than W - H - retention; an episode further back than its span
        # can no longer be joined by any future hot point.
        kept = prune_episodes(state["ep"], closed - _H - self._retention - self._det_span[detector])
        if not kept:
            del self._store[dkey]
        elif len(kept) != len(state["ep"]):
            self._store[dkey] = {"ep": kept}

    def _correct(
        self,
        partition: int,
        kind: str,
        key: str,
        minute: int,
        t: int,
        closed: int,
        now_ms: int,
        out: EngineOutput,
        before: Bucket | None,
        after_bucket: Bucket,
    ) -> None:
        """An accepted item changed a minute the watermark already closed: fix what was emitted.

        Windows are compared before/after the change, so only windows whose values changed are
        re-emitted. Only corrected windows keep a record (``e:``) of their version.
        """
        store = self._store
        buckets = _Buckets(store, partition)
        buckets.series(kind, key).buckets[minute] = after_bucket  # not written to the store yet
        n = KINDS[kind]
        if n:
            after = buckets.series(kind, key)
            previous = _Buckets(store, partition).series(kind, key)
            previous.buckets[minute] = before
            emitted_at = ms_to_dt(now_ms)
            # windows containing the minute, plus the next one (its acceleration changed)
            for start in range(minute - (n - 1) * _H, minute + 2 * _H, _H):
                if start + n * _H > closed:
                    break
                last = start + (n - 1) * _H
                pairs = after.pairs(start - _H, last)
                values = self._window_values(n, start, pairs)
                old_values = self._window_values(n, start, previous.pairs(start - _H, last))
                if values is None and old_values is not None:
                    values = self._empty_window_values(n, start, pairs)  # its last comment was removed
                if values is None or values == old_values:
                    continue
                rkey = f"e:{partition}:{kind}:{start}:{key}"
                record: dict[str, int] | None = store.get(rkey)
                if record is not None:
                    version = record["v"] + 1  # corrected before (possibly emptied by a removal since)
                elif old_values is not None:
                    version = 2
                    self._expire_later(partition, start + n * _H + self._retention, rkey)
                else:
                    version = 1  # a window that had no comments when the watermark passed it
                if version > 1:
                    store[rkey] = {"v": version}
                self._emit_row(partition, kind, key, start, values, version, emitted_at, out, after)
        detector = _SLIDING.get(kind)
        if detector is not None:
            hi = min(t + self._sliding_ms[detector], closed)
            if t < hi:
                self._detect_sliding(partition, detector, kind, key, t, hi, now_ms, out, buckets)

    def _expire_later(self, partition: int, at: int, key: str) -> None:
        """Delete ``key`` once the emitted boundary reaches ``at`` (used for correction records)."""
        xkey = f"x:{partition}"
        pending: list[list[Any]] = self._store.get(xkey) or []
        insort(pending, [at, key])
        self._store[xkey] = pending

    # ------------------------------------------------------------------------------ windows

    def _emit_windows(
        self,
        partition: int,
        kind: str,
        key: str,
        present: list[int],
        old: int,
        new: int,
        emitted_at: datetime,
        out: EngineOutput,
        buckets: _Buckets,
    ) -> None:
        """First emission (version 1) of one (kind, key)'s windows ending in (old, new].

        ``present``: ascending minutes in [old - span, new - 1 min] where the key has a bucket. No
        record is kept: a window the watermark passed was emitted once, with the values its buckets
        held then; corrections (:meth:`_correct`) work from before/after values.
        """
        n = KINDS[kind]
        series = buckets.series(kind, key)
        cache = series.buckets
        if n == 1:  # tumbling: the window at minute b is bucket b (+ the count of bucket b - 1)
            previous: tuple[int, Bucket] | None = None
            for b in present:
                bucket = cache[b] if b in cache else series.existing(b)
                if not bucket:
                    continue
                if b >= old:
                    one = [previous, (b, bucket)] if previous and previous[0] == b - _H else [(b, bucket)]
                    values = self._window_values(1, b, one)
                    if values is not None:
                        self._emit_row(partition, kind, key, b, values, 1, emitted_at, out, series)
                previous = (b, bucket)
            return
        span = n * _H
        first, last = old - span + _H, new - span  # starts of the windows ending in (old, new]
        starts: Iterable[int]
        if last - first <= 4 * _H * len(present):
            starts = range(first, last + _H, _H)  # usual case: the watermark moved a minute or two
        else:  # a big jump: only windows that contain one of the present minutes
            wanted: set[int] = set()
            for b in present:
                wanted.update(range(max(b - span + _H, first), min(b, last) + _H, _H))
            starts = sorted(wanted)
        for start in starts:
            hi = bisect_left(present, start + span)
            if not hi or present[hi - 1] < start:
                continue  # no comment in the window
            pairs: list[tuple[int, Bucket]] = []
            for m in present[bisect_left(present, start - _H) : hi]:
                bucket = cache[m] if m in cache else series.existing(m)
                if bucket:
                    pairs.append((m, bucket))
            values = self._window_values(n, start, pairs)
            if values is not None:
                self._emit_row(partition, kind, key, start, values, 1, emitted_at, out, series)

    def _emit_row(
        self,
        partition: int,
        kind: str,
        key: str,
        start: int,
        values: list[Any],
        version: int,
        emitted_at: datetime,
        out: EngineOutput,
        series: _Series,
    ) -> None:
        comments, authors, flagged_comments, flagged, mean_tox, max_depth, velocity, acceleration = values
        out.windows.append(
            WindowRow(
                kind=kind,
                key=key,
                window_start=_minute_dt(start),
                window_end=_minute_dt(start + KINDS[kind] * _H),
                comments=comments,
                distinct_authors=authors,
                flagged_comments=flagged_comments,
                flagged=flagged,
                mean_toxicity=mean_tox,
                max_depth=max_depth,
                velocity=velocity,
                acceleration=acceleration,
                version=version,
                emitted_at=emitted_at,
            )
        )
        if kind == THREAD_1M:
            self._detect_toxicity(partition, key, start, values, emitted_at, out, series)

    @staticmethod
    def _window_values(n: int, start: int, pairs: list[tuple[int, Bucket]]) -> list[Any] | None:
        """[comments, distinct_authors, flagged_comments, flagged, mean_toxicity, max_depth,
        velocity, acceleration] of the window of ``n`` minutes at ``start``, or None when empty.

        ``pairs``: the non-empty (minute, bucket)s in [start - 1 min, start + n - 1 min], ascending;
        the minute before the window only feeds the previous window's count (acceleration).
        """
        window_buckets = [bucket for minute, bucket in pairs if minute >= start]
        if not window_buckets:
            return None
        merged: Bucket
        if len(window_buckets) == 1:
            merged = window_buckets[0]  # read-only below: no copy needed
        else:
            merged = {}
            for bucket in window_buckets:
                merged.update(bucket)
        authors: set[str] = set()
        flagged: dict[str, int] = {}
        flagged_comments = 0
        max_depth = 0
        toxicities: list[float] = []
        for author, flags, toxicity, depth, _t, _thread in merged.values():
            authors.add(author)
            if flags:
                flagged_comments += 1
                for category in flags:
                    flagged[category] = flagged.get(category, 0) + 1
            toxicities.append(toxicity)
            if depth > max_depth:
                max_depth = depth
        # previous window: minutes [start - 1 min, start + n - 2 min]
        previous_buckets = [bucket for minute, bucket in pairs if minute < start + (n - 1) * _H]
        if len(previous_buckets) <= 1:
            previous = len(previous_buckets[0]) if previous_buckets else 0
        else:
            previous_ids: set[str] = set()
            for bucket in previous_buckets:
                previous_ids.update(bucket)
            previous = len(previous_ids)
        comments = len(merged)
        window_minutes = n * _H / MINUTE_MS
        velocity = comments / window_minutes
        return [
            comments,
            len(authors),
            flagged_comments,
            dict(sorted(flagged.items())) if len(flagged) > 1 else flagged,
            math.fsum(toxicities) / comments,  # fsum: independent of member order
            max_depth,
            velocity,
            velocity - previous / window_minutes,
        ]

    @staticmethod
    def _empty_window_values(n: int, start: int, pairs: list[tuple[int, Bucket]]) -> list[Any]:
        """The values of a window whose comments were all removed (acceleration still counts the previous one)."""
        previous_ids: set[str] = set()
        for minute, bucket in pairs:
            if minute < start + (n - 1) * _H:
                previous_ids.update(bucket)
        window_minutes = n * _H / MINUTE_MS
        return [0, 0, 0, {}, 0.0, 0, 0.0, -len(previous_ids) / window_minutes]

    # ---------------------------------------------------------------------------- detectors

    def _episodes(self, partition: int, detector: str, key: str) -> list[list[Any]]:
        """A fresh copy of a key's episodes (callers modify it, then write it back whole)."""
        state: dict[str, Any] | None = self._store.get(f"d:{partition}:{detector}:{key}")
        return [] if state is None else [list(e) for e in state["ep"]]

    def _detect_sliding(
        self,
        partition: int,
        detector: str,
        kind: str,
        key: str,
        lo: int,
        hi: int,
        now_ms: int,
        out: EngineOutput,
        buckets: _Buckets,
        present: list[int] | None = None,
    ) -> None:
        """Hot points in [lo, hi) of one key; a hot point not joining an episode raises an alert.

        ``present``: the minutes (ascending) the key has buckets in, when the caller knows them.
        """
        window_ms = self._sliding_ms[detector]
        predicate, min_items = self._sliding_pred[detector]
        first = lo - window_ms
        series = buckets.series(kind, key)
        minutes: Iterable[int]
        if present is None:
            minutes = range(_floor(first), hi, _H)
        else:
            minutes = present[bisect_left(present, _floor(first)) : bisect_left(present, hi)]
        found = [bucket for bucket in map(series.get, minutes) if bucket]
        if sum(map(len, found)) < min_items:
            return  # cheap: most keys (e.g. unique fingerprints) never get close
        items: dict[str, Member] = {}
        for bucket in found:
            for cid, (author, flags, _tox, _depth, t, thread) in bucket.items():
                if first < t < hi and not (detector == PILE_ON and author == key):
                    items[cid] = Member(t, cid, author, bool(flags), thread)
        if len(items) < min_items:
            return
        hits = scan_sliding(sorted(items.values()), window_ms, lo, hi, predicate)
        if not hits:
            return
        episodes = self._episodes(partition, detector, key)
        span = self._det_span[detector]
        changed = False
        for hit in hits:
            i = find_episode(episodes, hit.t, span)
            if i is None:
                alert = sliding_alert(detector, key, hit, self.config.detectors, now_ms)
                episodes.append([hit.t, hit.t, alert.alert_id])
                out.alerts.append(alert)
                changed = True
            else:
                first_ms, last_ms, aid = episodes[i]
                extended = [min(first_ms, hit.t), max(last_ms, hit.t), aid]
                if extended != episodes[i]:
                    episodes[i] = extended
                    changed = True
        if changed:
            episodes.sort()
            self._store[f"d:{partition}:{detector}:{key}"] = {"ep": episodes}

    def _detect_toxicity(
        self,
        partition: int,
        thread: str,
        start: int,
        values: list[Any],
        emitted_at: datetime,
        out: EngineOutput,
        series: _Series,
    ) -> None:
        cfg = self.config.detectors.toxicity_spike
        comments, flagged_comments = values[0], values[2]
        if comments < cfg.min_comments or flagged_comments / comments < cfg.min_flagged_share:
            return  # cheap pre-check before reading up to an hour of baseline buckets
        baseline: list[tuple[int, float]] = []
        b = start - _H
        while b >= start - cfg.lookback_ms and len(baseline) < cfg.baseline_windows:
            m = series.get(b)
            if m:
                baseline.append((b, sum(1 for e in m.values() if e[1]) / len(m)))
            b -= _H
        check = toxicity_spike_check(comments, flagged_comments, [s for _b, s in baseline], cfg)
        if not check.spiking:
            return
        episodes = self._episodes(partition, TOXICITY_SPIKE, thread)
        i = find_episode(episodes, start, self._det_span[TOXICITY_SPIKE])
        if i is not None:
            first_ms, last_ms, aid = episodes[i]
            extended = [min(first_ms, start), max(last_ms, start), aid]
            if extended == episodes[i]:
                return
            episodes[i] = extended
        else:
            members = series.get(start) or {}
            alert = toxicity_alert(
                thread,
                start,
                _H,
                list(members),
                [cid for cid, e in members.items() if e[1]],
                check,
                baseline,
                cfg,
                dt_to_ms(emitted_at),
            )
            episodes.append([start, start, alert.alert_id])
            episodes.sort()
            out.alerts.append(alert)
        self._store[f"d:{partition}:{TOXICITY_SPIKE}:{thread}"] = {"ep": episodes}
