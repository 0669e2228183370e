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
                                   boundary, last arrival (wall ms); with upstream sources also
                                   "src" {source: [event ms, advanced at, caught up]}, "clk" (the
                                   upstream clock of the newest report) and "clw" (when it was read)
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

Modules: `kinds` (window kinds, minutes), `records` (input, output rows, config, routing), `store`
(`WriteBuffer`, per-step bucket reads), `values` (one window's values), `detecting` (detector steps
and episodes), `core` (`WindowEngine`). Their names are importable from here (``X as X``: not in
`__all__`).
"""

from streams.windows.engine.core import WindowEngine
from streams.windows.engine.kinds import _H as _H
from streams.windows.engine.kinds import _SLIDING as _SLIDING
from streams.windows.engine.kinds import (
    AUTHOR_1M,
    CATEGORY_1M,
    KINDS,
    MINUTE_MS,
    PILE_ON_KIND,
    ROUTE_KINDS,
    SPAM_WAVE_KIND,
    THREAD_1M,
    THREAD_TREND_10M,
    WINDOW_KINDS,
)
from streams.windows.engine.kinds import IDLE_FLUSH_MS as IDLE_FLUSH_MS
from streams.windows.engine.records import (
    EngineOutput,
    LateEvent,
    WindowConfig,
    WindowInput,
    WindowRow,
    parse_route_key,
    route,
    route_key,
)
from streams.windows.engine.store import _DELETED as _DELETED
from streams.windows.engine.store import Bucket as Bucket
from streams.windows.engine.store import WriteBuffer
from streams.windows.engine.store import _Deleted as _Deleted

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
