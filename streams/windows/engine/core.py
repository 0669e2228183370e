"""`WindowEngine`: one step per delivery, tick or progress report, over state in a key-value store.

It applies items to their minute buckets, raises the watermark, emits the windows it closes (first
emissions and corrections) and expires what no window can touch any more; the semantics are in
`streams.windows.engine`. Window values come from `values`, detector steps from `detecting`.
"""

from __future__ import annotations

import math
from bisect import bisect_left, bisect_right, insort
from collections.abc import Callable, Iterable, MutableMapping
from datetime import datetime
from typing import Any

from streams.windows.detectors import (
    AUTHOR_FLOOD,
    PILE_ON,
    SPAM_WAVE,
    TOXICITY_SPIKE,
    ms_to_dt,
    sliding_predicate,
    sliding_window_ms,
)
from streams.windows.engine.detecting import _Detecting
from streams.windows.engine.kinds import (
    _H,
    _SLIDING,
    AUTHOR_1M,
    CATEGORY_1M,
    IDLE_FLUSH_MS,
    KINDS,
    PILE_ON_KIND,
    SPAM_WAVE_KIND,
    THREAD_1M,
    THREAD_TREND_10M,
    WINDOW_KINDS,
    _floor,
    _minute_dt,
)
from streams.windows.engine.records import EngineOutput, LateEvent, WindowConfig, WindowInput, WindowRow, _route_ok
from streams.windows.engine.store import Bucket, _Buckets, _Series
from streams.windows.engine.values import empty_window_values, window_values


class WindowEngine(_Detecting):
    """See `streams.windows.engine`. One instance may serve any number of partitions."""

    def __init__(self, config: WindowConfig, store: MutableMapping[str, Any]) -> None:
        self.config = config
        self._store = store
        owned = getattr(store, "owned", None)  # a WriteBuffer: the batch's own copies of what it wrote
        self._owned: Callable[[str], Any] = owned if owned is not None else (lambda key: None)
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
        #: Per partition: (sources dict, wall time, oldest live event time); see _live_sources_min.
        self._live_min: dict[int, tuple[Any, int, float]] = {}

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
                if minute < closed:
                    before = dict(members)
                # Not the stored dict: it stays as it was until the batch is persisted, so a failed
                # batch replays against it (StagedTable). The batch's own copy once it has one
                # (WriteBuffer.owned): a copy per comment made a burst into one minute quadratic.
                own = self._owned(bkey)
                members = own if own is not None else dict(members)
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
            self._note_source(meta, source, t, meta.get("clk", now_ms))
        self._raise_watermark(partition, meta, now_ms, out)
        store[mkey] = meta
        return out

    def progress(
        self,
        partition: int,
        source: str,
        event_ms: int,
        now_ms: int,
        *,
        caught_up: bool = False,
        clock_ms: int = 0,
        fresh_ms: int = 0,
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

        ``clock_ms`` is the upstream's wall time when it sent the report and ``fresh_ms`` when it
        last saw the source advance (or still had some of it to read). Given those, a source's
        idleness is measured on that clock, carried in the stream, not on this partition's wall
        clock: a backlog read here after a pause (this consumer lagging, a rebalance) would
        otherwise make the first sources read look live and the others idle, and their queued items
        late. Reports without them (older envelopes) are timed by ``now_ms``, as before.
        """
        out = EngineOutput()
        self._session.setdefault(partition, now_ms)
        mkey = f"p:{partition}"
        meta: dict[str, Any] | None = self._store.get(mkey)
        if meta is None:
            meta = {"max": event_ms, "wm": event_ms - self._lateness, "closed": _floor(event_ms - self._lateness)}
            meta["arr"] = now_ms
        if clock_ms:
            meta["clk"] = max(meta.get("clk", 0), clock_ms)
            meta["clw"] = now_ms
            self._note_source(meta, source, event_ms, fresh_ms or clock_ms, caught_up, fresh=bool(fresh_ms))
        else:
            self._note_source(meta, source, event_ms, meta.get("clk", now_ms), caught_up)
        self._raise_watermark(partition, meta, now_ms, out)
        self._store[mkey] = meta
        return out

    @staticmethod
    def _note_source(
        meta: dict[str, Any], source: str, event_ms: int, at_ms: int, caught_up: bool = False, *, fresh: bool = False
    ) -> None:
        """Record a source as [newest event time, (source) clock time it last advanced, caught up];
        ``fresh``: ``at_ms`` is the upstream's own word for when it last advanced, taken as it is."""
        current: dict[str, list[int]] = meta.get("src") or {}
        seen = current.get(source)
        if seen is None:
            entry = [event_ms, at_ms, int(caught_up)]
        elif fresh:
            entry = [max(seen[0], event_ms), max(seen[1], at_ms), int(caught_up)]
        elif event_ms > seen[0]:
            entry = [event_ms, max(seen[1], at_ms), int(caught_up)]
        else:
            entry = [seen[0], seen[1], int(caught_up)]
        if entry == seen:
            return  # most items of a batch: the dict stays, and so does _live_sources_min's answer
        sources = dict(current)
        sources[source] = entry
        meta["src"] = sources

    def _live_sources(self, meta: dict[str, Any], clock_ms: int) -> list[list[int]]:
        """The sources whose event time advanced within ``source_idle_ms`` of ``clock_ms`` (the
        partition's source clock: `_source_clock`): [event time, advanced, caught up]."""
        sources: dict[str, list[int]] = meta.get("src") or {}
        return [s for s in sources.values() if clock_ms - s[1] < self.config.source_idle_ms]

    @staticmethod
    def _source_clock(meta: dict[str, Any], now_ms: int) -> int:
        """The clock source idleness is measured on: the upstream's, carried by its reports, plus
        the wall time since the last report was read here (only what was read counts: a backlog
        read after a pause is timed as it was sent); the wall clock before any report carried one."""
        clock = meta.get("clk")
        return now_ms if clock is None else clock + max(0, now_ms - meta.get("clw", now_ms))

    def _live_sources_min(self, partition: int, meta: dict[str, Any], clock_ms: int) -> float:
        """The oldest event time of the live sources (inf without any). Asked once per item with the
        same sources and clock for a whole batch, so it is kept until either changes (the sources
        dict is replaced, never changed in place: `_note_source`; the cache holds it, so its id
        cannot be reused)."""
        sources = meta.get("src")
        cached = self._live_min.get(partition)
        if cached is not None and cached[0] is sources and cached[1] == clock_ms:
            return cached[2]
        oldest = math.inf
        idle = self.config.source_idle_ms
        for seen in (sources or {}).values():  # _live_sources, without building the list
            if clock_ms - seen[1] < idle and seen[0] < oldest:
                oldest = seen[0]
        self._live_min[partition] = (sources, clock_ms, oldest)
        return oldest

    def _raise_watermark(self, partition: int, meta: dict[str, Any], now_ms: int, out: EngineOutput) -> None:
        heard = len(meta.get("src") or ())
        waited = now_ms - self._session.get(partition, now_ms)
        if heard < self.config.upstream_sources and waited < self.config.source_idle_ms:
            return  # a source not heard yet may hold older items than any seen so far
        base = min(meta["max"], self._live_sources_min(partition, meta, meta.get("clk", now_ms)))
        if base - self._lateness > meta["wm"]:
            meta["wm"] = base - self._lateness
            if _floor(meta["wm"]) > meta["closed"]:
                self._advance(partition, meta, now_ms, out)

    def tick(self, partition: int, now_ms: int) -> EngineOutput:
        """Idle handling (see `streams.windows.engine`); call every few seconds per partition."""
        out = EngineOutput()
        mkey = f"p:{partition}"
        meta: dict[str, int] | None = self._store.get(mkey)
        session = self._session.setdefault(partition, now_ms)
        if meta is None:
            return out
        quiet = now_ms - max(meta["arr"], session)
        if quiet < self.config.idle_timeout_ms:
            return out
        live = self._live_sources(meta, self._source_clock(meta, now_ms))
        if any(s[0] < meta["max"] and not (len(s) > 2 and s[2]) for s in live):
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
                values = window_values(n, start, pairs)
                old_values = window_values(n, start, previous.pairs(start - _H, last))
                if values is None and old_values is not None:
                    values = empty_window_values(n, start, pairs)  # its last comment was removed
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
                    values = window_values(1, b, one)
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
            values = window_values(n, start, pairs)
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
