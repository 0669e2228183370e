"""Event-time window engine: boundaries, aggregates, watermark/lateness/versions, idempotency, idle.

Expected values come from `naive_windows`, an independent brute force over the raw items (it assigns
items to windows by arithmetic and counts; it shares no code with the engine's bucket logic).
"""

from __future__ import annotations

import copy
import itertools
import json
import math
import re
import time
import zlib
from collections import defaultdict
from collections.abc import Iterable, Iterator, MutableMapping, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import msgspec
import pytest
from clickhouse_connect.driver.client import Client
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from streams.windows import (
    WINDOW_KINDS,
    Alert,
    EngineOutput,
    LateEvent,
    WindowConfig,
    WindowEngine,
    WindowInput,
    WindowRow,
    WriteBuffer,
    dt_to_ms,
    ms_to_dt,
    parse_route_key,
    route,
    route_key,
)
from streams.windows.archive import generate_archive

MIN = 60_000
T0 = dt_to_ms(datetime(2018, 5, 1, 12, 0, tzinfo=UTC))  # archive event time
NOW = dt_to_ms(datetime(2025, 11, 25, 9, 0, tzinfo=UTC))  # wall clock of the replay
LATENESS = 5 * MIN
RETENTION = 60 * MIN
ROOT = Path(__file__).resolve().parents[2]

WindowId = tuple[str, str, int]  # (kind, key, window_start_ms)


def item(
    cid: str,
    t: int,
    *,
    thread: str = "t1",
    author: str = "a1",
    parent: str | None = None,
    flags: Sequence[str] = (),
    tox: float = 0.0,
    depth: int = 0,
    fp: str = "",
) -> WindowInput:
    return WindowInput(
        comment_id=cid,
        thread_id=thread,
        author=author,
        parent_author=parent,
        posted_at_ms=t,
        flags=list(flags),
        toxicity=tox,
        depth=depth,
        fingerprint=fp,
    )


class JsonStore(MutableMapping[str, Any]):
    """A store that keeps JSON text, like a changelog/RocksDB-backed Faust Table: `get` returns a fresh
    copy, so a change that is not written back with `store[k] = v` is lost."""

    def __init__(self) -> None:
        self.data: dict[str, str] = {}

    def __getitem__(self, key: str) -> Any:
        return json.loads(self.data[key])

    def __setitem__(self, key: str, value: Any) -> None:
        self.data[key] = json.dumps(value)

    def __delitem__(self, key: str) -> None:
        del self.data[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self.data)

    def __len__(self) -> int:
        return len(self.data)


class Harness:
    """Routes items, partitions deliveries like the re-keyed topic would, and collects outputs."""

    def __init__(
        self,
        partitions: int = 1,
        config: WindowConfig | None = None,
        store: MutableMapping[str, Any] | None = None,
        now: int = NOW,
    ) -> None:
        self.store: MutableMapping[str, Any] = {} if store is None else store
        self.config = config or WindowConfig()
        self.engine = WindowEngine(self.config, self.store)
        self.partitions = partitions
        self.now = now
        self.rows: list[WindowRow] = []
        self.late: list[LateEvent] = []
        self.alerts: list[Alert] = []

    def partition(self, kind: str, key: str) -> int:
        return zlib.crc32(route_key(kind, key).encode()) % self.partitions

    def collect(self, out: EngineOutput) -> EngineOutput:
        self.rows.extend(out.windows)
        self.late.extend(out.late)
        self.alerts.extend(out.alerts)
        return out

    def deliver(self, kind: str, key: str, it: WindowInput, step_ms: int = 1) -> EngineOutput:
        self.now += step_ms
        return self.collect(self.engine.process(self.partition(kind, key), kind, key, it, self.now))

    def feed(self, items: Iterable[WindowInput], step_ms: int = 1) -> EngineOutput:
        total = EngineOutput()
        for it in items:
            for kind, key in route(it):
                total.extend(self.deliver(kind, key, it, step_ms))
        return total

    def tick(self, advance_ms: int) -> EngineOutput:
        self.now += advance_ms
        total = EngineOutput()
        for p in range(self.partitions):
            total.extend(self.collect(self.engine.tick(p, self.now)))
        return total

    def finish(self) -> EngineOutput:
        """Idle far ahead: every window emitted, all state expired."""
        return self.tick(2 * 86_400_000)

    def latest(self) -> dict[WindowId, WindowRow]:
        return latest(self.rows)


def wid(row: WindowRow) -> WindowId:
    return (row.kind, row.key, dt_to_ms(row.window_start))


def latest(rows: Iterable[WindowRow]) -> dict[WindowId, WindowRow]:
    out: dict[WindowId, WindowRow] = {}
    for row in rows:
        prev = out.get(wid(row))
        if prev is None or row.version > prev.version:
            out[wid(row)] = row
    return out


def values(row: WindowRow) -> tuple[Any, ...]:
    """Everything but emitted_at."""
    return msgspec.structs.astuple(row)[:-1]


# ------------------------------------------------------------------------------ independent oracle


def naive_windows(items: Iterable[WindowInput], kinds: Iterable[str] = WINDOW_KINDS) -> dict[WindowId, dict[str, Any]]:
    """Brute force: assign each item to its windows by arithmetic, then aggregate plain lists."""
    wanted = set(kinds)
    sizes = {"thread_1m": 1, "author_1m": 1, "category_1m": 1, "thread_trend_10m": 10}
    members: dict[WindowId, dict[str, WindowInput]] = defaultdict(dict)
    for it in items:
        minute = it.posted_at_ms // MIN * MIN
        if "thread_1m" in wanted:
            members[("thread_1m", it.thread_id, minute)][it.comment_id] = it
        if "author_1m" in wanted:
            members[("author_1m", it.author, minute)][it.comment_id] = it
        if "category_1m" in wanted:
            for category in set(it.flags):
                members[("category_1m", category, minute)][it.comment_id] = it
        if "thread_trend_10m" in wanted:
            for back in range(10):
                members[("thread_trend_10m", it.thread_id, minute - back * MIN)][it.comment_id] = it
    expected: dict[WindowId, dict[str, Any]] = {}
    for (kind, key, start), group in members.items():
        size = sizes[kind]
        rows = list(group.values())
        flagged: dict[str, int] = {}
        for r in rows:
            for category in set(r.flags):
                flagged[category] = flagged.get(category, 0) + 1
        previous = len(members.get((kind, key, start - MIN), {}))
        expected[(kind, key, start)] = {
            "window_end": start + size * MIN,
            "comments": len(rows),
            "distinct_authors": len({r.author for r in rows}),
            "flagged_comments": sum(1 for r in rows if r.flags),
            "flagged": dict(flagged),
            "mean_toxicity": sum(r.toxicity for r in rows) / len(rows),
            "max_depth": max(r.depth for r in rows),
            "velocity": len(rows) / size,
            "acceleration": (len(rows) - previous) / size,
        }
    return expected


def assert_matches(got: dict[WindowId, WindowRow], expected: dict[WindowId, dict[str, Any]]) -> None:
    missing = sorted(set(expected) - set(got))[:5]
    extra = sorted(set(got) - set(expected))[:5]
    assert not missing, f"windows with comments never emitted, e.g. {missing}"
    assert not extra, f"windows emitted without comments, e.g. {extra}"
    got_exact = {
        w: (dt_to_ms(r.window_end), r.comments, r.distinct_authors, r.flagged_comments, r.flagged, r.max_depth)
        for w, r in got.items()
    }
    want_exact = {
        w: (e["window_end"], e["comments"], e["distinct_authors"], e["flagged_comments"], e["flagged"], e["max_depth"])
        for w, e in expected.items()
    }
    if got_exact != want_exact:  # one C-level comparison; on failure, name the first difference
        window = next(w for w in sorted(want_exact) if got_exact[w] != want_exact[w])
        assert got_exact[window] == want_exact[window], window
    close = math.isclose
    for window, exp in expected.items():
        row = got[window]
        assert close(row.mean_toxicity, exp["mean_toxicity"], rel_tol=1e-9, abs_tol=1e-12), window
        assert close(row.velocity, exp["velocity"], rel_tol=1e-12), window
        assert close(row.acceleration, exp["acceleration"], rel_tol=1e-9, abs_tol=1e-12), window


# ----------------------------------------------------------------------------------------- routing


def test_route_lists_every_kind_and_detector_key_once() -> None:
    it = item("c1", T0, thread="t9", author="bob", parent="amy", flags=["spam", "insult", "spam"], fp="fp1")
    assert route(it) == [
        ("thread_1m", "t9"),
        ("author_1m", "bob"),
        ("thread_trend_10m", "t9"),
        ("category_1m", "insult"),
        ("category_1m", "spam"),
        ("pile_on", "amy"),
        ("spam_wave", "fp1"),
    ]
    # no flags, no fingerprint, a self-reply (cannot be a pile-on)
    assert route(item("c2", T0, author="amy", parent="amy")) == [
        ("thread_1m", "t1"),
        ("author_1m", "amy"),
        ("thread_trend_10m", "t1"),
    ]


def test_route_key_round_trips_keys_containing_colons() -> None:
    assert parse_route_key(route_key("author_1m", "user:with:colons")) == ("author_1m", "user:with:colons")
    with pytest.raises(ValueError, match="not a window route key"):
        parse_route_key("nonsense:key")


def test_process_rejects_unknown_kinds_and_misrouted_items() -> None:
    engine = WindowEngine(WindowConfig(), {})
    it = item("c1", T0, flags=["spam"])
    with pytest.raises(ValueError, match="unknown window kind"):
        engine.process(0, "thread_5m", "t1", it, NOW)
    with pytest.raises(ValueError, match="not routed"):
        engine.process(0, "author_1m", "someone-else", it, NOW)
    with pytest.raises(ValueError, match="not routed"):
        engine.process(0, "category_1m", "insult", it, NOW)
    with pytest.raises(ValueError, match="not routed"):
        engine.process(0, "spam_wave", "", it, NOW)


def test_window_config_validation() -> None:
    with pytest.raises(ValueError):
        WindowConfig(idle_timeout_ms=0)
    with pytest.raises(ValueError):
        WindowConfig(allowed_lateness_ms=-1)


# ------------------------------------------------------------------------------ boundaries, values


def test_tumbling_and_hopping_boundaries_are_exact_to_the_millisecond() -> None:
    h = Harness()
    h.feed([item("early", T0 + MIN - 1, author="a1"), item("late", T0 + MIN, author="a2")])
    h.finish()
    got = h.latest()
    assert got[("thread_1m", "t1", T0)].comments == 1
    assert got[("thread_1m", "t1", T0)].distinct_authors == 1
    assert got[("thread_1m", "t1", T0 + MIN)].comments == 1
    assert ("thread_1m", "t1", T0 - MIN) not in got
    assert got[("author_1m", "a1", T0)].window_end == ms_to_dt(T0 + MIN)
    assert ("author_1m", "a1", T0 + MIN) not in got
    trend = {start: row.comments for (kind, _key, start), row in got.items() if kind == "thread_trend_10m"}
    # 12:00:59.999 is in the windows starting 11:51..12:00, 12:01:00.000 in 11:52..12:01
    assert trend == {T0 - 9 * MIN: 1, **{T0 - k * MIN: 2 for k in range(8, -1, -1)}, T0 + MIN: 1}
    assert got[("thread_trend_10m", "t1", T0 - 9 * MIN)].window_end == ms_to_dt(T0 + MIN)
    assert_matches(got, naive_windows([item("early", T0 + MIN - 1, author="a1"), item("late", T0 + MIN, author="a2")]))


def test_window_aggregates() -> None:
    items = [
        item("p1", T0 - MIN + 5_000, author="x"),
        item("p2", T0 - MIN + 6_000, author="x"),
        item("c1", T0 + 1_000, author="ann", flags=["insult"], tox=0.9, depth=0),
        item("c2", T0 + 2_000, author="bob", flags=["insult", "threat"], tox=0.7, depth=3),
        item("c3", T0 + 3_000, author="ann", tox=0.1, depth=5),
        item("c4", T0 + 4_000, author="cid", flags=["spam"], tox=0.3, depth=1),
        item("c5", T0 + 59_999, author="dan", tox=0.0, depth=2),
    ]
    h = Harness(partitions=3)
    h.feed(items)
    h.finish()
    got = h.latest()
    row = got[("thread_1m", "t1", T0)]
    assert (row.comments, row.distinct_authors, row.flagged_comments) == (5, 4, 3)
    assert row.flagged == {"insult": 2, "spam": 1, "threat": 1}
    assert row.max_depth == 5
    assert row.mean_toxicity == pytest.approx((0.9 + 0.7 + 0.1 + 0.3 + 0.0) / 5)
    assert (row.velocity, row.acceleration) == (5.0, 3.0)  # 5/min now, 2/min the minute before
    assert row.version == 1
    insult = got[("category_1m", "insult", T0)]
    assert (insult.comments, insult.distinct_authors, insult.flagged) == (2, 2, {"insult": 2, "threat": 1})
    assert ("category_1m", "insult", T0 - MIN) not in got  # unflagged items never enter category windows
    ann = got[("author_1m", "ann", T0)]
    assert (ann.comments, ann.flagged_comments, ann.max_depth) == (2, 1, 5)
    trend = got[("thread_trend_10m", "t1", T0)]
    assert (trend.comments, trend.velocity) == (5, 0.5)
    # the window starting a minute earlier holds p1, p2 and c1..c5: acceleration = (5 - 7) / 10
    assert got[("thread_trend_10m", "t1", T0 - MIN)].comments == 7
    assert trend.acceleration == pytest.approx(-0.2)
    assert_matches(got, naive_windows(items))


def test_window_is_emitted_exactly_when_the_watermark_reaches_its_end() -> None:
    h = Harness()
    h.feed([item("c1", T0 + 10_000)])
    out = h.feed([item("c2", T0 + MIN + LATENESS - 1, thread="t2")])  # W = 12:00:59.999
    assert not [r for r in out.windows if r.kind == "thread_1m" and r.key == "t1"]
    out = h.feed([item("c3", T0 + MIN + LATENESS, thread="t2")])  # W = 12:01:00.000 = end
    emitted = [r for r in out.windows if r.kind == "thread_1m" and r.key == "t1"]
    assert [(dt_to_ms(r.window_start), r.comments, r.version) for r in emitted] == [(T0, 1, 1)]
    assert h.engine.watermark(0) == T0 + MIN


# ------------------------------------------------------------------------------ lateness, versions


def test_late_item_within_retention_emits_corrected_rows_with_version_2() -> None:
    h = Harness()
    base = [item("c1", T0 + 1_000, author="ann", tox=0.2), item("c2", T0 + MIN + 1_000, author="bob")]
    h.feed(base)
    h.feed([item("push", T0 + 12 * MIN, thread="other")])  # W = 12:07: 12:00 and 12:01 emitted
    first = h.latest()
    assert first[("thread_1m", "t1", T0)].version == 1
    out = h.feed([item("late", T0 + 30_000, author="cat", flags=["insult"], tox=0.8, depth=2)])
    assert not out.late
    corrected = {wid(r): r for r in out.windows}
    row = corrected[("thread_1m", "t1", T0)]
    assert (row.version, row.comments, row.distinct_authors, row.flagged, row.max_depth) == (
        2,
        2,
        2,
        {"insult": 1},
        2,
    )
    assert row.mean_toxicity == pytest.approx(0.5)
    # the next minute's acceleration depended on this minute's count: corrected too
    nxt = corrected[("thread_1m", "t1", T0 + MIN)]
    assert (nxt.version, nxt.comments, nxt.acceleration) == (2, 1, -1.0)
    # a window that had no comments when the watermark passed it appears late, as version 1
    assert corrected[("author_1m", "cat", T0)].version == 1
    assert corrected[("category_1m", "insult", T0)].version == 1
    # trend windows already emitted (ending <= 12:07, i.e. starting 11:51..11:57) are corrected;
    # the others (11:58..12:00) are emitted later, once, with the late item in them
    trend = {start: r.version for (kind, _k, start), r in corrected.items() if kind == "thread_trend_10m"}
    assert trend == {T0 + k * MIN: 2 for k in range(-9, -2)}
    # the same correction redelivered: no new version
    assert not h.feed([item("late", T0 + 30_000, author="cat", flags=["insult"], tox=0.8, depth=2)])
    # another late item: version 3
    out = h.feed([item("later", T0 + 40_000, author="dan")])
    assert {r.version for r in out.windows if wid(r) == ("thread_1m", "t1", T0)} == {3}
    h.finish()
    everything = [*base, item("late", T0 + 30_000, author="cat", flags=["insult"], tox=0.8, depth=2)]
    everything += [item("push", T0 + 12 * MIN, thread="other"), item("later", T0 + 40_000, author="dan")]
    assert_matches(h.latest(), naive_windows(everything))


def test_late_item_beyond_retention_is_a_late_event_and_changes_nothing() -> None:
    h = Harness()
    h.feed([item("c1", T0 + 1_000)])
    h.feed([item("push", T0 + MIN + RETENTION + LATENESS, thread="other")])  # W = 13:01 = end + 1 h
    before = copy.deepcopy(dict(h.store))
    too_late = item("too-late", T0 + 2_000, author="zed", flags=["spam"])
    out = h.feed([too_late])
    assert not out.windows and not out.alerts
    # one LateEvent per (comment, kind) it was routed to
    assert sorted(e.window_kind for e in out.late) == sorted(kind for kind, _key in route(too_late))
    late = out.late[0]
    assert (late.comment_id, late.thread_id, late.author) == ("too-late", "t1", "zed")
    assert late.posted_at == ms_to_dt(too_late.posted_at_ms)
    assert late.watermark == ms_to_dt(T0 + MIN + RETENTION)
    # only the arrival time moved
    after = dict(h.store)
    assert {k: v for k, v in after.items() if not k.startswith("p:")} == {
        k: v for k, v in before.items() if not k.startswith("p:")
    }
    h.finish()
    assert h.latest()[("thread_1m", "t1", T0)].comments == 1


def test_redelivery_after_the_horizon_is_not_reported_late_while_its_bucket_remains() -> None:
    h = Harness()
    applied = item("c1", T0 + 1_000, flags=["spam"])
    h.feed([applied])
    h.feed([item("push", T0 + MIN + RETENTION + LATENESS + 30_000, thread="other")])  # W = end + 1h30s
    assert not h.feed([applied]), "an applied item is not late, even past the horizon"
    assert {e.window_kind for e in h.feed([item("new", T0 + 2_000, flags=["spam"])]).late} == {
        kind for kind, _key in route(applied)
    }


def test_just_inside_retention_is_accepted_just_outside_is_late() -> None:
    h = Harness()
    h.feed([item("c1", T0 + 1_000)])
    h.feed([item("push", T0 + MIN + RETENTION + LATENESS - 1, thread="other")])  # W = end + 1h - 1ms
    out = h.feed([item("in", T0 + 59_999, author="b")])
    assert not out.late and any(wid(r) == ("thread_1m", "t1", T0) and r.version == 2 for r in out.windows)
    h.feed([item("push2", T0 + MIN + RETENTION + LATENESS, thread="other")])  # W = end + 1h
    out = h.feed([item("out", T0 + 59_999, author="c")])
    assert out.late and not out.windows


# ---------------------------------------------------------------------------- idempotency, restart


def small_archive(
    n: int = 2000,
    seed: int = 11,
    shuffle: timedelta = timedelta(minutes=4),
    *,
    duration: timedelta = timedelta(hours=3),
    threads: int = 40,
    authors: int = 300,
) -> list[WindowInput]:
    return generate_archive(
        n,
        seed=seed,
        start=datetime(2018, 5, 1, tzinfo=UTC),
        duration=duration,
        threads=threads,
        authors=authors,
        shuffle_within=shuffle,
    )


def test_redelivered_items_never_double_count() -> None:
    items = small_archive()
    h = Harness(partitions=2)
    for i, it in enumerate(items):
        h.feed([it])
        h.feed([it])  # immediate redelivery
        if i % 100 == 99:  # and a burst redelivery of the recent past
            assert not h.feed(items[i - 50 : i + 1]), "redelivery must emit nothing"
    h.finish()
    assert not h.late
    assert {r.version for r in h.rows} == {1}
    assert len(h.rows) == len(h.latest())
    assert_matches(h.latest(), naive_windows(items))


def test_restart_from_changelog_copy_resumes_exactly() -> None:
    items = small_archive(seed=12)
    clean = Harness(partitions=3)
    clean.feed(items)
    clean.finish()

    half = len(items) // 2
    first = Harness(partitions=3)
    first.feed(items[:half])
    snapshot = copy.deepcopy(dict(first.store))  # the changelog as of `half`
    first.feed(items[half : half + 300])  # ... and the process got further before crashing

    # restart from the changelog and re-process from an earlier committed offset
    restarted = Harness(partitions=3, store=copy.deepcopy(snapshot), now=first.now)
    assert not restarted.feed(items[half - 400 : half]), "already-applied items must emit nothing"
    restarted.feed(items[half:])
    restarted.finish()

    combined = first.rows + restarted.rows
    assert_matches(latest(combined), naive_windows(items))
    assert {w: values(r) for w, r in latest(combined).items()} == {w: values(r) for w, r in clean.latest().items()}
    # rows emitted twice (before the crash and again after it) carry the same version and values
    by_version: dict[tuple[WindowId, int], tuple[Any, ...]] = {}
    for row in combined:
        assert by_version.setdefault((wid(row), row.version), values(row)) == values(row)
    assert {r.version for r in combined} == {1}
    assert sorted(a.alert_id for a in clean.alerts) == sorted({a.alert_id for a in first.alerts + restarted.alerts})


def test_restart_after_lost_changelog_writes_reemits_same_version_same_values() -> None:
    """Corrections too: a crash can lose the last writes; re-processing must not invent new values."""
    h = Harness()
    h.feed([item("c1", T0 + 1_000)])
    h.feed([item("push", T0 + 20 * MIN, thread="other")])
    snapshot = copy.deepcopy(dict(h.store))
    out1 = h.feed([item("late", T0 + 2_000, author="b")])
    assert {r.version for r in out1.windows if wid(r) == ("thread_1m", "t1", T0)} == {2}
    replay = Harness(store=copy.deepcopy(snapshot), now=h.now)
    out2 = replay.feed([item("late", T0 + 2_000, author="b")])
    assert [(wid(r), values(r)) for r in out2.windows] == [(wid(r), values(r)) for r in out1.windows]


def test_write_buffer_stages_writes_and_deletes_until_flush() -> None:
    backing = {"a": 1, "b": 2}
    buf = WriteBuffer(backing)
    buf["a"] = 10
    buf["c"] = 3
    del buf["b"]
    assert (buf["a"], buf.get("b"), "b" in buf, "c" in buf, sorted(buf), len(buf)) == (
        10,
        None,
        False,
        True,
        ["a", "c"],
        2,
    )
    assert backing == {"a": 1, "b": 2} and buf.pending == 3
    with pytest.raises(KeyError):
        del buf["b"]
    buf.flush()
    assert backing == {"a": 10, "c": 3} and buf.pending == 0
    buf["d"] = 4
    buf.discard()
    assert "d" not in buf and backing == {"a": 10, "c": 3}


def _reference_and_buffered(items: list[WindowInput]) -> tuple[Harness, JsonStore, WriteBuffer, Harness]:
    """A reference run of `items` without crashes, and a harness whose state goes through a
    WriteBuffer over a JSON store (the crash tests discard or cut its flushes)."""
    reference = Harness()
    reference.feed(items)
    reference.finish()
    backing = JsonStore()
    buffer = WriteBuffer(backing)
    return reference, backing, buffer, Harness(store=buffer)


def test_publishing_outputs_before_flushing_state_loses_nothing_in_a_crash() -> None:
    """Outputs first, then state: a crash in between replays the same rows (same version/values)."""
    items = small_archive(n=600, seed=15, shuffle=timedelta(minutes=30))
    reference, backing, buffer, h = _reference_and_buffered(items)
    published: list[WindowRow] = []
    crashed = 0
    for i, it in enumerate(items):
        for kind, key in route(it):
            out = h.deliver(kind, key, it)
            published.extend(out.windows)
            if out.windows and i % 7 == 0 and crashed < 20:
                buffer.discard()  # crash after publishing, before the table write: redelivered
                crashed += 1
                again = h.deliver(kind, key, it)
                assert [(wid(r), values(r)) for r in again.windows] == [(wid(r), values(r)) for r in out.windows]
            buffer.flush()
    h.tick(2 * 86_400_000)
    buffer.flush()
    assert crashed == 20
    assert {w: values(r) for w, r in latest(h.rows).items()} == {w: values(r) for w, r in reference.latest().items()}
    assert len(backing) == 1  # bounded: only the partition's meta is left


@pytest.mark.parametrize("persisted", [0.1, 0.35, 0.6, 0.85, 0.97])
def test_a_crash_that_persists_part_of_a_flush_loses_nothing_on_replay(persisted: float) -> None:
    """A crash while a batch's state is written back persists a prefix of the writes (in the
    buffer's write order); the batch is then replayed on that state. Batches here span hours of
    event time, so a batch's own early buckets are closed and pruned by its end (the agent's
    batches do that when it lags behind a replayed archive)."""
    items = small_archive(1500, seed=5, duration=timedelta(hours=12), threads=4, authors=40)
    reference, backing, buffer, h = _reference_and_buffered(items)
    batches = [items[i : i + 250] for i in range(0, len(items), 250)]
    for n, batch in enumerate(batches):
        h.feed(batch)
        if n % 2 == 1:
            writes = buffer.write_order()
            buffer.discard()
            for key, value in writes[: int(len(writes) * persisted)]:  # the crash: only a prefix persisted
                if value is None:
                    backing.pop(key, None)
                else:
                    backing[key] = value
            h.feed(batch)  # redelivered from the last committed offset
        buffer.flush()
    h.finish()
    buffer.flush()
    # As ReplacingMergeTree keeps them: the highest version, the last one written among equals.
    kept: dict[WindowId, WindowRow] = {}
    for row in h.rows:
        if wid(row) not in kept or row.version >= kept[wid(row)].version:
            kept[wid(row)] = row
    assert {w: values(r) for w, r in kept.items()} == {w: values(r) for w, r in reference.latest().items()}
    assert not reference.late


def test_an_edit_that_changes_values_is_a_correction_an_identical_one_is_not() -> None:
    h = Harness()
    h.feed([item("c1", T0 + 1_000, tox=0.2), item("c2", T0 + 2_000, author="b", tox=0.4)])
    h.feed([item("push", T0 + 20 * MIN, thread="other")])
    assert not h.feed([item("c1", T0 + 1_000, tox=0.2)])
    out = h.feed([item("c1", T0 + 1_000, tox=0.6)])  # re-scored
    row = next(r for r in out.windows if wid(r) == ("thread_1m", "t1", T0))
    assert (row.version, row.comments) == (2, 2)
    assert row.mean_toxicity == pytest.approx(0.5)


def remove(h: Harness, old: WindowInput, new: WindowInput | None) -> EngineOutput:
    """What the fan-out does for an edit (new) or a deletion (None): new routes get the new version,
    routes only the old version had get a removal."""
    keep = set(route(new)) if new is not None else set()
    total = h.feed([new]) if new is not None else EngineOutput()
    for kind, key in route(old):
        if (kind, key) not in keep:
            h.now += 1
            total.extend(h.collect(h.engine.process(h.partition(kind, key), kind, key, old, h.now, remove=True)))
    return total


def test_a_deleted_comment_leaves_its_emitted_windows_as_a_correction() -> None:
    h = Harness()
    c1 = item("c1", T0 + 1_000, author="ann", flags=["insult"], tox=0.8)
    c2 = item("c2", T0 + 2_000, author="bob")
    h.feed([c1, c2, item("push", T0 + 20 * MIN, thread="other")])
    out = remove(h, c1, None)
    corrected = {wid(r): r for r in out.windows}
    row = corrected[("thread_1m", "t1", T0)]
    assert (row.version, row.comments, row.distinct_authors, row.flagged) == (2, 1, 1, {})
    # windows left without comments are re-emitted with zero counts, so the latest version is right
    for emptied in (("author_1m", "ann", T0), ("category_1m", "insult", T0)):
        assert (corrected[emptied].version, corrected[emptied].comments, corrected[emptied].flagged) == (2, 0, {})
    assert not remove(h, c1, None).windows  # a redelivered removal changes nothing
    h.finish()
    alive = {k: r for k, r in h.latest().items() if r.comments}
    assert_matches(alive, naive_windows([c2, item("push", T0 + 20 * MIN, thread="other")]))


def test_a_window_emptied_by_a_deletion_and_filled_again_gets_a_higher_version() -> None:
    h = Harness()
    c1 = item("c1", T0 + 1_000, author="ann")
    h.feed([c1, item("push", T0 + 20 * MIN, thread="other")])
    remove(h, c1, None)  # version 2, zero comments
    h.feed([item("c2", T0 + 2_000, author="ann")])  # a late comment for the same minute
    row = h.latest()[("author_1m", "ann", T0)]
    assert (row.version, row.comments) == (3, 1)


def test_an_edit_that_drops_a_flag_leaves_that_category_window() -> None:
    h = Harness()
    before = item("c1", T0 + 1_000, flags=["insult"], tox=0.9, fp="f1")
    after = item("c1", T0 + 1_000, tox=0.1, fp="f2")
    other = item("c2", T0 + 3_000, author="b", flags=["insult"])
    h.feed([before, other])
    remove(h, before, after)  # before any window is emitted: no correction, just the right contents
    h.feed([item("push", T0 + 20 * MIN, thread="other")])
    h.finish()
    assert h.latest()[("category_1m", "insult", T0)].comments == 1
    assert_matches(h.latest(), naive_windows([after, other, item("push", T0 + 20 * MIN, thread="other")]))


def test_removing_what_a_window_never_had_changes_nothing_and_beyond_the_horizon_is_late() -> None:
    h = Harness()
    c1 = item("c1", T0 + 1_000)
    h.feed([item("c0", T0 + 500), item("push", T0 + 20 * MIN, thread="other")])
    assert not remove(h, c1, None).windows
    h.feed([item("far", T0 + 3 * 60 * MIN, thread="other")])  # watermark far past 12:00 + retention
    out = remove(h, item("c0", T0 + 500), None)
    assert {e.comment_id for e in out.late} == {"c0"} and not out.windows


# ------------------------------------------------------------------------------------------- idle


def test_idle_partition_tick_emits_pending_windows() -> None:
    h = Harness()
    h.feed([item("c1", T0 + 10_000), item("c2", T0 + MIN + 20_000)])
    assert not h.rows  # W = 11:56:20
    assert not h.tick(29_999)
    out = h.tick(1)  # 30 s of quiet: everything seen is complete, W = newest event + 10 min
    assert sorted((r.kind, dt_to_ms(r.window_start)) for r in out.windows if r.kind != "thread_trend_10m") == [
        ("author_1m", T0),
        ("author_1m", T0 + MIN),
        ("thread_1m", T0),
        ("thread_1m", T0 + MIN),
    ]
    # Every trend window holding an item is out too (the latest one starts at the newest item's minute).
    trend_starts = sorted(dt_to_ms(r.window_start) for r in out.windows if r.kind == "thread_trend_10m")
    assert trend_starts == [T0 + m * MIN for m in range(-9, 2)]
    assert h.engine.watermark(0) == T0 + MIN + 20_000 + 10 * MIN
    h.tick(40_000)  # then W follows wall time
    assert h.engine.watermark(0) == T0 + MIN + 20_000 + 10 * MIN + 40_000
    # A straggler for an idle-flushed window is a correction, not a loss.
    out = h.feed([item("c3", T0 + 30_000)])
    row = next(r for r in out.windows if r.kind == "thread_1m" and dt_to_ms(r.window_start) == T0)
    assert (row.comments, row.version) == (2, 2)
    h.finish()
    assert_matches(
        h.latest(),
        naive_windows([item("c1", T0 + 10_000), item("c2", T0 + MIN + 20_000), item("c3", T0 + 30_000)]),
    )


def test_idle_time_counts_only_from_when_this_engine_instance_saw_the_partition() -> None:
    h = Harness()
    h.feed([item("c1", T0 + 10_000)])
    # restart two hours later: the quiet time before the restart is downtime, not idleness
    restarted = Harness(store=copy.deepcopy(dict(h.store)), now=h.now)
    assert not restarted.tick(2 * 3_600_000)
    assert restarted.engine.watermark(0) == T0 + 10_000 - LATENESS
    assert not restarted.tick(29_999)
    assert restarted.tick(1).windows  # 30 s observed by this instance: idle flush
    # resume() (partition re-assigned) restarts the idle clock too
    h.engine.resume(0, h.now + 3_600_000)
    assert not h.tick(3_600_000 + 29_999)


def test_continuous_replay_of_old_data_with_real_wall_clock_never_closes_windows_early() -> None:
    """The Faust bug: wall-clock expiry closes every 2018 window at once. Here W follows event time."""
    items = small_archive(n=3000, seed=13)
    h = Harness(partitions=4, now=int(time.time() * 1000))
    max_seen: dict[int, int] = defaultdict(lambda: -(2**62))
    for i, it in enumerate(items):
        for kind, key in route(it):
            p = h.partition(kind, key)
            max_seen[p] = max(max_seen[p], it.posted_at_ms)
            out = h.deliver(kind, key, it, step_ms=3)
            wm = h.engine.watermark(p)
            assert wm == max_seen[p] - LATENESS
            assert all(dt_to_ms(r.window_end) <= wm for r in out.windows)
        if i % 25 == 0:  # the periodic timer keeps ticking with the real clock
            assert not h.tick(0).windows
    assert not h.late
    assert {r.version for r in h.rows} == {1}
    h.finish()
    assert_matches(h.latest(), naive_windows(items))


# ------------------------------------------------------------------------------- cross-checks


def test_fixed_50k_archive_matches_brute_force() -> None:
    """50,000 comments over a day, shuffled within the allowed lateness, 4 partitions.

    Only the window routes are fed here (the detector-only routes do not touch windows; detectors
    get the same treatment against their own oracle in test_detectors.py)."""
    items = generate_archive(
        50_000,
        seed=2018,
        start=datetime(2018, 3, 1, tzinfo=UTC),
        duration=timedelta(days=1),
        threads=60,
        authors=4000,
        shuffle_within=timedelta(minutes=4, seconds=59),
    )
    h = Harness(partitions=4)
    deliveries = [(kind, key, it) for it in items for kind, key in route(it) if kind in WINDOW_KINDS]
    middle = len(deliveries) // 2
    for i, (kind, key, it) in enumerate(deliveries):
        h.deliver(kind, key, it)
        if i == middle:
            json.dumps(h.store)  # the changelog can serialise every value
            prefixes = {k.split(":", 2)[0] for k in h.store}
            assert prefixes <= {"p", "a", "i", "b", "e", "x", "d"}
            assert all(k.split(":", 2)[1].isdigit() for k in h.store)
    h.finish()
    assert not h.late  # shuffled within the allowed lateness: nothing is late...
    assert {r.version for r in h.rows} == {1}  # ... and nothing needs correcting
    assert_matches(h.latest(), naive_windows(items))
    assert sorted(h.store) == [f"p:{p}" for p in range(4)]  # everything else expired
    assert {a.detector for a in h.alerts} == {"author_flood", "toxicity_spike"}  # ride on window routes


def test_json_round_trip_store_behaves_exactly_like_a_dict() -> None:
    """Catches any in-place mutation that is not written back (lost by a real Faust Table)."""
    items = small_archive(n=900, seed=14, shuffle=timedelta(minutes=40))  # corrections included
    plain, table = Harness(partitions=2), Harness(partitions=2, store=JsonStore())
    for h in (plain, table):
        h.feed(items)
        h.finish()
    assert any(r.version > 1 for r in plain.rows)
    assert [values(r) for r in table.rows] == [values(r) for r in plain.rows]
    assert table.alerts == plain.alerts
    assert table.late == plain.late
    assert_matches(table.latest(), naive_windows(items))


@st.composite
def scenarios(draw: st.DrawFn) -> tuple[list[WindowInput], list[int], int]:
    """Items over ~40 min, an arrival order with delays up to `max_delay`, and redeliveries."""
    n = draw(st.integers(1, 40))
    threads, authors, cats = ["t1", "t2", "t:3"], ["a", "b", "c", "d"], ["spam", "insult", "threat"]
    items = []
    for i in range(n):
        items.append(
            item(
                f"c{i}",
                # a coarse grid half the time: items on window boundaries and at equal instants
                T0 + draw(st.integers(0, 40 * MIN) | st.integers(0, 80).map(lambda k: k * 30_000)),
                thread=draw(st.sampled_from(threads)),
                author=draw(st.sampled_from(authors)),
                parent=draw(st.none() | st.sampled_from(authors)),
                flags=draw(st.lists(st.sampled_from(cats), max_size=3)),
                tox=draw(st.floats(0, 1)),
                depth=draw(st.integers(0, 6)),
                fp=draw(st.sampled_from(["", "f1", "f2"])),
            )
        )
    max_delay = draw(st.sampled_from([0, LATENESS, 30 * MIN, 3 * RETENTION]))
    delays = [draw(st.integers(0, max_delay)) for _ in items]
    order = sorted(range(n), key=lambda i: (items[i].posted_at_ms + delays[i], i))
    redeliver = draw(st.lists(st.integers(0, n - 1), max_size=5))
    for i in redeliver:
        order.insert(draw(st.integers(order.index(i), len(order))), i)
    return items, order, max_delay


@settings(max_examples=35, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(scenario=scenarios(), partitions=st.integers(1, 3))
def test_property_latest_versions_equal_brute_force(
    scenario: tuple[list[WindowInput], list[int], int], partitions: int
) -> None:
    items, order, max_delay = scenario
    h = Harness(partitions=partitions)
    accepted: dict[str, set[str]] = defaultdict(set)  # kind -> comment ids counted
    for i in order:
        it = items[i]
        for kind, key in route(it):
            out = h.deliver(kind, key, it)
            if not out.late:
                accepted[kind].add(it.comment_id)
    h.finish()
    got = h.latest()
    for kind in WINDOW_KINDS:
        expected = naive_windows([it for it in items if it.comment_id in accepted[kind]], kinds=[kind])
        assert_matches({w: r for w, r in got.items() if w[0] == kind}, expected)
    # versions of a window are 1, 2, 3... and consecutive versions differ
    history: dict[WindowId, list[WindowRow]] = defaultdict(list)
    for row in h.rows:
        history[wid(row)].append(row)
    for rows in history.values():
        assert [r.version for r in rows] == list(range(1, len(rows) + 1))
        assert all(values(a)[:-1] != values(b)[:-1] for a, b in itertools.pairwise(rows))
    if max_delay <= LATENESS:
        assert not h.late and {r.version for r in h.rows} <= {1}
    assert [k for k in h.store if not k.startswith("p:")] == []
    json.dumps(h.store)


# ---------------------------------------------------------------------------------- ClickHouse


@pytest.mark.clickhouse
def test_rows_load_into_clickhouse_and_final_equals_count_and_uniqexact_over_raw_comments(ch: Client) -> None:
    """The engine's rows in the real schema: FINAL (latest version) against SQL over the raw items."""
    items = small_archive(n=1500, seed=21, shuffle=timedelta(minutes=20))  # corrections included
    h = Harness(partitions=2)
    h.feed(items)
    very_late = item("very-late", dt_to_ms(datetime(2018, 5, 1, tzinfo=UTC)), flags=["spam"])
    h.feed([very_late])  # an hour beyond retention
    h.finish()
    assert any(r.version > 1 for r in h.rows) and h.late and h.alerts
    for table, rows in (("activity_windows", h.rows), ("late_events", h.late), ("alerts", h.alerts)):
        struct = type(rows[0])
        ch.insert(table, [msgspec.structs.astuple(r) for r in rows], column_names=list(struct.__struct_fields__))
    ch.command(
        "CREATE TABLE raw (comment_id String, thread_id String, author String, t Int64, flags Array(String),"
        " depth UInt16) ENGINE = MergeTree ORDER BY t"
    )
    raw = [[x.comment_id, x.thread_id, x.author, x.posted_at_ms, x.flags, x.depth] for x in items]
    ch.insert("raw", raw, column_names=["comment_id", "thread_id", "author", "t", "flags", "depth"])
    windows = """
        SELECT kind, key, toInt64(toUnixTimestamp64Milli(window_start)) AS ws, comments, distinct_authors,
               flagged_comments, max_depth
        FROM activity_windows FINAL WHERE kind = {kind:String} ORDER BY key, ws"""
    minute = "intDiv(t, 60000) * 60000"
    raw_sql = {
        "thread_1m": f"SELECT thread_id AS k, {minute} AS ws FROM raw",
        "author_1m": f"SELECT author AS k, {minute} AS ws FROM raw",
        "category_1m": f"SELECT c AS k, {minute} AS ws FROM raw ARRAY JOIN arrayDistinct(flags) AS c",
        "thread_trend_10m": f"SELECT thread_id AS k, {minute} - 60000 * b AS ws FROM raw ARRAY JOIN range(10) AS b",
    }
    for kind, source in raw_sql.items():
        expected = ch.query(
            f"""SELECT {{kind:String}}, k, ws, count(), uniqExact(author), countIf(notEmpty(flags)), max(depth)
                FROM ({source.replace("SELECT ", "SELECT author, flags, depth, ", 1)})
                GROUP BY k, ws ORDER BY k, ws""",
            parameters={"kind": kind},
        ).result_rows
        got = ch.query(windows, parameters={"kind": kind}).result_rows
        assert got == expected, kind
    late = ch.query("SELECT comment_id, window_kind FROM late_events FINAL ORDER BY window_kind").result_rows
    assert late == [("very-late", kind) for kind in sorted(kind for kind, _key in route(very_late))]
    assert ch.query("SELECT count() FROM alerts FINAL").result_rows == [(len({a.alert_id for a in h.alerts}),)]


# ---------------------------------------------------------------------------------- row shapes


def _columns(table: str) -> list[str]:
    sql = (ROOT / "schemas/clickhouse/0003_windows_alerts_late_events.sql").read_text()
    body = re.search(rf"CREATE TABLE IF NOT EXISTS {table}\s*\((.*?)\n\)", sql, re.S)
    assert body, table
    return [line.split()[0] for line in body.group(1).strip().splitlines() if line.strip()]


@pytest.mark.parametrize(
    ("table", "struct"), [("activity_windows", WindowRow), ("late_events", LateEvent), ("alerts", Alert)]
)
def test_output_rows_map_one_to_one_onto_clickhouse_columns(table: str, struct: type[msgspec.Struct]) -> None:
    assert list(struct.__struct_fields__) == _columns(table)


# ------------------------------------------------------------------------------------- archive


def test_archive_is_deterministic_and_shuffled_within_bounds() -> None:
    kwargs: dict[str, Any] = {
        "start": datetime(2018, 3, 1, tzinfo=UTC),
        "duration": timedelta(hours=6),
        "threads": 50,
        "authors": 500,
        "shuffle_within": timedelta(minutes=3),
    }
    a = generate_archive(8000, seed=5, **kwargs)
    assert a == generate_archive(8000, seed=5, **kwargs)
    assert a != generate_archive(8000, seed=6, **kwargs)
    assert len(a) == 8000 and len({x.comment_id for x in a}) == 8000
    start = dt_to_ms(kwargs["start"])
    assert all(start <= x.posted_at_ms < start + 6 * 3_600_000 for x in a)
    running, displaced = -(2**62), 0
    for x in a:
        assert x.posted_at_ms > running - 3 * MIN
        displaced += x.posted_at_ms < running
        running = max(running, x.posted_at_ms)
    assert displaced > 1000  # really shuffled
    assert any(x.parent_author for x in a) and any(x.flags for x in a) and any(x.depth > 2 for x in a)
    assert all(0.0 <= x.toxicity <= 1.0 for x in a)
    assert len({x.fingerprint for x in a}) < len(a)  # copy-pasta and spam waves


def test_archive_of_50k_is_generated_in_under_two_seconds() -> None:
    started = time.process_time()  # CPU time: robust to a busy CI machine
    items = generate_archive(
        50_000,
        seed=1,
        start=datetime(2018, 3, 1, tzinfo=UTC),
        duration=timedelta(days=1),
        threads=300,
        authors=4000,
        shuffle_within=timedelta(minutes=4),
    )
    assert len(items) == 50_000
    assert time.process_time() - started < 2.0


# -------------------------------------------------------------------------------- upstream sources


def test_a_lagging_upstream_source_holds_the_watermark_back() -> None:
    """Two upstream partitions feed one windows partition; the fast one must not close windows the
    slow one still has comments for (uneven consumption of a replayed archive)."""
    engine = WindowEngine(WindowConfig(), {})
    now = NOW
    engine.progress(0, "valid:1", T0, now)  # the slow source has only reached 12:00
    for i in range(30):
        engine.process(0, "thread_1m", "t1", item(f"f{i}", T0 + i * MIN, thread="t1"), now, source="valid:0")
    assert engine.watermark(0) == T0 - LATENESS
    # Its comment for 12:00:30 is not late: the 12:00 window is still open.
    out = engine.process(0, "thread_1m", "t1", item("s1", T0 + 30_000, thread="t1"), now, source="valid:1")
    assert not out.late
    # Once it catches up the windows close, with both comments in the first one.
    out = engine.progress(0, "valid:1", T0 + 29 * MIN, now)
    first = next(r for r in out.windows if dt_to_ms(r.window_start) == T0)
    assert (first.comments, first.version) == (2, 1)


def test_a_partition_waiting_for_a_lagging_source_is_not_idle() -> None:
    """The fast source fed this partition and went quiet, the slow one is still sending (its
    reports keep coming): the idle timeout must not take what arrived so far as complete."""
    config = WindowConfig(idle_timeout_ms=3_000)
    engine = WindowEngine(config, {})
    now = NOW
    engine.tick(0, now)  # this engine instance sees the partition from now on
    engine.progress(0, "valid:1", T0, now)
    for i in range(30):
        engine.process(0, "thread_1m", "t1", item(f"f{i}", T0 + i * MIN), now, source="valid:0")
    engine.progress(0, "valid:0", T0 + 29 * MIN, now, caught_up=True)
    now += 10_000
    engine.progress(0, "valid:1", T0 + 10_000, now)  # still far behind, still sending
    now += 10_000
    assert not engine.tick(0, now).windows
    assert engine.watermark(0) == T0 + 10_000 - LATENESS  # held by the slow source
    out = engine.process(0, "thread_1m", "t1", item("s1", T0 + 20_000), now, source="valid:1")
    assert not out.late
    # Read to its end too: the partition may now go idle, and the idle flush closes the windows.
    engine.progress(0, "valid:1", T0 + 20_000, now, caught_up=True)
    assert engine.watermark(0) == T0 + 20_000 - LATENESS  # caught up still holds the watermark
    out = engine.tick(0, now + 3_000)
    first = next(r for r in out.windows if dt_to_ms(r.window_start) == T0)
    assert (first.comments, first.version) == (2, 1)


def test_a_caught_up_source_still_holds_the_watermark() -> None:
    """Read to its end says nothing about what ingest has not written to it yet: a caught-up
    source far behind the others must not let their items close its windows."""
    engine = WindowEngine(WindowConfig(), {})
    engine.progress(0, "valid:1", T0, NOW, caught_up=True)
    for i in range(90):
        engine.process(0, "thread_1m", "t1", item(f"f{i}", T0 + i * MIN), NOW, source="valid:0")
    assert engine.watermark(0) == T0 - LATENESS
    out = engine.process(0, "thread_1m", "t2", item("s1", T0 + 30_000, thread="t2"), NOW, source="valid:1")
    assert not out.late


def test_a_source_reporting_without_advancing_stops_holding_after_source_idle() -> None:
    """Enrich reports every source it knows after each batch; one whose event time stands still
    (its threads went quiet) must not hold the windows forever."""
    engine = WindowEngine(WindowConfig(source_idle_ms=60_000), {})
    engine.progress(0, "valid:1", T0, NOW)
    engine.process(0, "thread_1m", "t1", item("f0", T0 + 20 * MIN), NOW, source="valid:0")
    engine.progress(0, "valid:1", T0, NOW + 59_000)  # reported again, not advanced
    assert engine.watermark(0) == T0 - LATENESS
    engine.progress(0, "valid:1", T0, NOW + 60_000)
    assert engine.watermark(0) == T0 + 20 * MIN - LATENESS


def test_the_watermark_waits_for_every_upstream_source_to_report() -> None:
    """After a restart enrich may read a backlog from one partition before another: the first
    source's hours of comments must not close windows the unread one still has items for."""
    engine = WindowEngine(WindowConfig(upstream_sources=2, source_idle_ms=60_000), {})
    for i in range(90):
        engine.process(0, "thread_1m", "t1", item(f"f{i}", T0 + i * MIN), NOW, source="valid:0")
    out = engine.process(0, "thread_1m", "t2", item("s1", T0 + 30_000, thread="t2"), NOW, source="valid:1")
    assert not out.late and not out.windows
    engine.progress(0, "valid:1", T0 + MIN, NOW)
    assert engine.watermark(0) == T0 + MIN - LATENESS  # both heard: the slower one sets it


def test_a_missing_upstream_source_holds_the_watermark_only_for_source_idle() -> None:
    engine = WindowEngine(WindowConfig(upstream_sources=2, source_idle_ms=60_000), {})
    engine.process(0, "thread_1m", "t1", item("f0", T0), NOW, source="valid:0")
    engine.process(0, "thread_1m", "t1", item("f1", T0 + 20 * MIN), NOW + 59_000, source="valid:0")
    assert engine.watermark(0) == T0 - LATENESS
    out = engine.process(0, "thread_1m", "t1", item("f2", T0 + 21 * MIN), NOW + 60_000, source="valid:0")
    assert engine.watermark(0) == T0 + 21 * MIN - LATENESS
    assert any(r.kind == "thread_1m" for r in out.windows)


def test_a_source_silent_past_source_idle_no_longer_holds_windows() -> None:
    engine = WindowEngine(WindowConfig(source_idle_ms=60_000), {})
    engine.progress(0, "valid:1", T0, NOW)
    engine.process(0, "thread_1m", "t1", item("f0", T0 + MIN, thread="t1"), NOW, source="valid:0")
    engine.process(0, "thread_1m", "t1", item("f1", T0 + 20 * MIN, thread="t1"), NOW, source="valid:0")
    assert engine.watermark(0) == T0 - LATENESS
    out = engine.process(0, "thread_1m", "t1", item("f2", T0 + 21 * MIN, thread="t1"), NOW + 60_000, source="valid:0")
    assert engine.watermark(0) == T0 + 21 * MIN - LATENESS
    assert any(r.kind == "thread_1m" for r in out.windows)


def test_a_backlog_read_after_a_pause_is_timed_by_the_clock_it_was_sent_with() -> None:
    """This windows partition is read minutes late (its consumer lagged): the first source read
    after the pause must not look live while the others, queued behind it, look idle. Timed by the
    windows' wall clock, the fast source's items closed 24 minutes of windows early (the slow
    source's queued comment became a correction, or beyond retention a late event)."""
    engine = WindowEngine(WindowConfig(source_idle_ms=120_000), {})
    sent = NOW  # enrich's clock when it wrote these reports and items, one batch apart
    engine.progress(0, "valid:0", T0, NOW, clock_ms=sent, fresh_ms=sent)
    engine.progress(0, "valid:1", T0, NOW, clock_ms=sent, fresh_ms=sent)
    read = NOW + 300_000  # the rest of the backlog is read five minutes later
    for i in range(30):  # the fast source's batch, then its report ...
        engine.process(0, "thread_1m", "t1", item(f"f{i}", T0 + i * MIN, thread="t1"), read, source="valid:0")
    engine.progress(0, "valid:0", T0 + 29 * MIN, read, clock_ms=sent + 1_000, fresh_ms=sent + 1_000)
    assert engine.watermark(0) == T0 - LATENESS  # the slow source's report is older than 120 s of *its* clock
    out = engine.process(0, "thread_1m", "t2", item("s1", T0 + 30_000, thread="t2"), read, source="valid:1")
    assert not out
    out = engine.progress(0, "valid:1", T0 + 29 * MIN, read, clock_ms=sent + 1_000, fresh_ms=sent + 1_000)
    first = [r for r in out.windows if dt_to_ms(r.window_start) == T0]
    assert sorted((r.key, r.comments, r.version) for r in first) == [("t1", 1, 1), ("t2", 1, 1)]


def test_a_source_with_more_to_read_holds_the_watermark_while_its_event_time_stands_still() -> None:
    """A source whose unread items are old (a backfill queued on its partition) reports no newer
    event time for minutes; while it is not read to its end it stays live (fresh_ms is now)."""
    engine = WindowEngine(WindowConfig(source_idle_ms=60_000), {})
    engine.progress(0, "valid:1", T0, NOW, clock_ms=NOW, fresh_ms=NOW)
    engine.process(0, "thread_1m", "t1", item("f0", T0 + 20 * MIN), NOW, source="valid:0")
    later = NOW + 10 * MIN
    engine.progress(0, "valid:1", T0, later, clock_ms=later, fresh_ms=later)
    assert engine.watermark(0) == T0 - LATENESS
    # Read to its end and not advancing for source_idle on the sender's clock: it stops holding.
    engine.progress(0, "valid:1", T0, later, clock_ms=later, fresh_ms=later, caught_up=True)
    engine.progress(0, "valid:1", T0, later, clock_ms=later + 59_000, fresh_ms=later, caught_up=True)
    assert engine.watermark(0) == T0 - LATENESS
    engine.progress(0, "valid:1", T0, later, clock_ms=later + 60_000, fresh_ms=later, caught_up=True)
    assert engine.watermark(0) == T0 + 20 * MIN - LATENESS


def test_idle_handling_counts_the_quiet_since_the_last_report_on_the_senders_clock() -> None:
    """Once nothing more arrives, the quiet time here adds to the sender's clock: a source that
    was still sending holds the idle flush only until it has been silent for source_idle."""
    engine = WindowEngine(WindowConfig(idle_timeout_ms=3_000, source_idle_ms=60_000), {})
    engine.tick(0, NOW)
    sent = NOW - 3_600_000  # the sender's clock runs an hour behind this one: only differences count
    engine.progress(0, "valid:1", T0, NOW, clock_ms=sent, fresh_ms=sent)
    engine.process(0, "thread_1m", "t1", item("f0", T0 + 20 * MIN), NOW, source="valid:0")
    assert not engine.tick(0, NOW + 30_000).windows  # valid:1 was sending 30 s ago: not idle yet
    out = engine.tick(0, NOW + 60_000)
    assert any(r.kind == "thread_1m" for r in out.windows)


class CopiesAllButBuckets(dict[str, Any]):
    """Hands out the stored bucket objects ("b:" keys) and copies of the rest, as the worker's
    StagedTable does for the windows (the engine changes its metadata and indexes in place)."""

    def __getitem__(self, key: str) -> Any:
        value = super().__getitem__(key)
        return value if key.startswith("b:") else copy.deepcopy(value)


@pytest.mark.parametrize("batch", [1, 7, 50])
def test_buckets_a_batch_wrote_change_in_place_with_the_same_rows_and_the_store_untouched(batch: int) -> None:
    """Over a WriteBuffer with a plain dict behind it (the worker's StagedTable hands out the stored
    bucket objects), a bucket the batch already wrote is changed in place (WriteBuffer.owned): the
    rows are those of a plain run, and nothing stored changes before the batch is flushed."""
    items = small_archive(n=300, seed=21, shuffle=timedelta(minutes=10))
    reference = Harness()
    reference.feed(items)
    reference.finish()
    backing = CopiesAllButBuckets()
    buffer = WriteBuffer(backing)
    h = Harness(store=buffer)
    for start in range(0, len(items), batch):
        before = copy.deepcopy(backing)
        h.feed(items[start : start + batch])
        assert backing == before
        buffer.flush()
    h.finish()
    buffer.flush()
    assert [(r.kind, r.key, r.window_start, r.version, r.comments) for r in h.rows] == [
        (r.kind, r.key, r.window_start, r.version, r.comments) for r in reference.rows
    ]


def test_a_burst_into_one_minute_copies_its_bucket_once_per_batch_not_once_per_comment() -> None:
    """The first item of a batch copies the stored bucket; the batch's later items change that copy
    (a copy per item made a burst into one thread-minute quadratic: 40,000 comments kept the worker
    from answering for over a minute). The stored bucket is untouched until the flush."""
    backing: dict[str, Any] = {}
    buffer = WriteBuffer(backing)
    h = Harness(store=buffer)
    h.deliver("thread_1m", "t1", item("c0", T0 + 1_000))
    buffer.flush()
    stored = next(v for k, v in backing.items() if k.startswith("b:") and ":thread_1m:" in k)
    bkey = next(k for k, v in backing.items() if v is stored)
    objects = set()
    for i in range(1, 50):
        h.deliver("thread_1m", "t1", item(f"c{i}", T0 + 1_000 + i))
        objects.add(id(buffer.owned(bkey)))
    assert len(objects) == 1  # one copy for the batch
    assert list(backing[bkey]) == ["c0"] and backing[bkey] is stored
    buffer.flush()
    assert len(backing[bkey]) == 50
