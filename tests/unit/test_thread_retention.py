"""Thread state retention (streams.enrich.thread, `retention_ms` of event time and `quiet_ms` of
wall clock): memory stays bounded, and what was retired is never counted twice."""

from __future__ import annotations

import random

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from streams.enrich.thread import Retired, ThreadTree
from tests.unit.test_thread_tree import T0, ev

HOUR_MS = 3_600_000
MIN_MS = 60_000
T0_MS = int(T0.timestamp() * 1000)


def test_without_retention_nothing_is_scheduled() -> None:
    tree = ThreadTree({})
    tree.place(ev("a", "alice", 0), now_ms=0)
    assert tree.retire(10 * 24 * HOUR_MS) == 0
    assert {k.split("|")[0] for k in tree.store} == {"n", "a"}


def test_a_thread_that_moved_on_retires_its_old_comments() -> None:
    tree = ThreadTree({}, retention_ms=2 * HOUR_MS)
    tree.place(ev("a", "alice", 0), now_ms=0)
    tree.place(ev("b", "bob", 1, parent_id="a"), now_ms=0)
    tree.place(ev("c", "carol", 2, parent_author="bob"), now_ms=0)
    tree.place(ev("w", "dave", 3, parent_id="never-seen"), now_ms=0)  # waits for its parent
    tree.place(ev("y", "yan", 100), now_ms=0)
    assert tree.retire(now_ms=0) == 0  # not old enough yet
    tree.place(ev("z", "zed", 123), now_ms=0)  # 2 h after the first three, not after w
    assert tree.retire(now_ms=0) == 3
    assert sorted(k for k in tree.store if k.startswith("n|")) == ["n|th|w", "n|th|y", "n|th|z"]
    assert tree.store["x|th|"] == T0_MS + 2 * MIN_MS
    assert not any(k.startswith(("k|", "ba|")) for k in tree.store)
    assert "a|th|bob" not in tree.store and "a|th|yan" in tree.store


@pytest.mark.parametrize("retention_ms", [0, 2 * HOUR_MS])
def test_a_quiet_thread_is_retired_whole_after_the_quiet_time_of_wall_clock(retention_ms: int) -> None:
    tree = ThreadTree({}, retention_ms=retention_ms, quiet_ms=2 * HOUR_MS)
    tree.place(ev("a", "alice", 0), now_ms=0)
    tree.place(ev("b", "bob", 1, parent_id="a"), now_ms=0)
    tree.place(ev("w", "dave", 3, parent_id="never-seen"), now_ms=0)
    assert tree.retire(now_ms=HOUR_MS) == 0
    assert tree.retire(now_ms=3 * HOUR_MS) == 3
    # Only the horizon and the scope's schedules (an emptied index, a stale event-time bucket) stay.
    assert {k for k in tree.store if not k.startswith(("q|", "e|", "c|"))} == {"x|th|"}
    assert tree.store["x|th|"] == T0_MS + 3 * MIN_MS


def test_the_quiet_rule_alone_keeps_a_thread_fed_in_minutes_whole_however_old() -> None:
    """The default (quiet time only) is safe for imports: a thread spanning weeks of event time,
    fed within minutes, keeps every parent, and a re-feed changes nothing."""
    tree = ThreadTree({}, quiet_ms=7 * 24 * HOUR_MS)
    minutes = [0, 60 * 24 * 10, 60 * 24 * 30]  # day 0, day 10, day 30
    for i, minute in enumerate(minutes):
        tree.place(ev(f"c{i}", f"u{i}", minute, parent_id=f"c{i - 1}" if i else None), now_ms=i * MIN_MS)
        assert tree.retire(now_ms=i * MIN_MS) == 0
    [late_reply] = tree.place(ev("late", "lu", 5, parent_id="c0"), now_ms=5 * MIN_MS)  # day 0, fed last
    assert (late_reply.parent_id, late_reply.depth, late_reply.parent_missing) == ("c0", 1, False)
    [again] = tree.place(ev("c1", "u1", minutes[1], parent_id="c0"), now_ms=6 * MIN_MS)
    assert (again.depth, again.revision) == (1, 0)
    assert tree.retire(now_ms=7 * 24 * HOUR_MS) == 0  # not yet a week after its last event (minute 5)
    assert tree.retire(now_ms=(7 * 24 + 1) * HOUR_MS) == 4  # a week of silence, checked per hour of wall clock
    assert not any(k.startswith(("n|", "rb|", "rh|", "a|", "k|", "l|")) for k in tree.store)


def test_a_batch_rewrites_the_schedule_of_its_own_event_hour_only() -> None:
    """The schedule is kept in one bucket per event-time hour, so a long thread's new comment does
    not rewrite the whole thread's schedule; retiring empties the old hours' buckets."""
    tree = ThreadTree({}, retention_ms=2 * HOUR_MS)
    for i in range(10):  # one comment every 30 minutes: hours 0 to 4
        tree.place(ev(f"c{i}", "alice", 30 * i), now_ms=0)
    hours = sorted(k for k in tree.store if k.startswith("rb|"))
    assert len(hours) == 5 and all(len(tree.store[k]) == 2 for k in hours)
    assert tree.retire(now_ms=0) == 5  # newest at 4:30: everything before 2:30 goes
    assert [len(tree.store[k]) for k in sorted(k for k in tree.store if k.startswith("rb|"))] == [1, 2, 2]
    assert len(tree.store["rh|th|"]) == 3


def test_the_older_single_list_schedule_is_still_retired() -> None:
    tree = ThreadTree({}, retention_ms=2 * HOUR_MS)
    tree.place(ev("a", "alice", 0), now_ms=0)
    tree.store["r|th|"] = [[T0_MS, "a"]]  # the schedule as the previous version wrote it
    del tree.store[next(k for k in tree.store if k.startswith("rb|"))], tree.store["rh|th|"]
    tree.place(ev("z", "zed", 200), now_ms=0)
    assert tree.retire(now_ms=0) == 1
    assert "r|th|" not in tree.store and "n|th|a" not in tree.store


def test_an_old_archive_keeps_its_threads_whole_next_to_newer_traffic_by_default() -> None:
    tree = ThreadTree({}, quiet_ms=7 * 24 * HOUR_MS)
    live = msgspec.structs.replace(ev("now", "nina", 10**6), thread_id="live")  # another thread, years later
    tree.place(live, now_ms=0)
    tree.place(ev("a", "alice", 0), now_ms=0)
    tree.retire(now_ms=0)
    [reply] = tree.place(ev("b", "bob", 1, parent_id="a"), now_ms=0)
    assert (reply.parent_id, reply.depth, reply.parent_missing) == ("a", 1, False)


def test_a_thread_the_partitions_event_time_left_behind_is_retired_whole() -> None:
    """With the event-time rule, a thread whose newest event is the retention behind the newest
    event of its partition goes whole (what bounds memory in a replay faster than real time)."""
    tree = ThreadTree({}, retention_ms=2 * HOUR_MS)
    tree.place(ev("a", "alice", 0), now_ms=0)
    tree.place(ev("b", "bob", 30, parent_id="a"), now_ms=0)
    other = [msgspec.structs.replace(ev(f"o{m}", "olga", m), thread_id="other") for m in (100, 170, 181)]
    tree.place(other[0], now_ms=0)
    assert tree.retire(now_ms=0) == 0
    tree.place(other[1], now_ms=0)  # 2:20 past b, but not past the end of b's hour (checked per hour)
    assert tree.retire(now_ms=0) == 0
    tree.place(other[2], now_ms=0)  # 2 h past the end of b's hour
    assert tree.retire(now_ms=0) == 2
    assert sorted(k for k in tree.store if k.startswith("n|")) == ["n|other|o100", "n|other|o170", "n|other|o181"]
    with pytest.raises(Retired):
        tree.place(ev("b", "bob", 30, parent_id="a"), now_ms=0)  # a replay


def test_an_event_of_a_retired_comment_is_refused_not_placed_again() -> None:
    tree = ThreadTree({}, retention_ms=2 * HOUR_MS)
    tree.place(ev("a", "alice", 0), now_ms=0)
    tree.place(ev("z", "zed", 200), now_ms=0)  # the thread moved on
    assert tree.retire(now_ms=0) == 1
    with pytest.raises(Retired, match="comment a was posted at or before"):
        tree.place(ev("a", "alice", 0), now_ms=0)  # a redelivery
    with pytest.raises(Retired):
        tree.place(ev("a", "alice", 0, event_type="comment.edited", edited_minute=210, body="x"), now_ms=0)
    with pytest.raises(Retired):  # never seen, but as old as what was retired
        tree.place(ev("late", "lu", 0), now_ms=0)
    [p] = tree.place(ev("z", "zed", 200), now_ms=0)  # still held: a redelivery changes nothing
    assert p.revision == 0


def test_replies_keep_the_place_their_retired_parent_gave_them() -> None:
    tree = ThreadTree({}, retention_ms=2 * HOUR_MS)
    tree.place(ev("a", "alice", 0), now_ms=0)
    tree.place(ev("b", "bob", 100, parent_id="a"), now_ms=0)
    tree.place(ev("c", "carol", 190, parent_id="b"), now_ms=0)
    assert tree.retire(now_ms=0) == 1  # a
    [edit] = tree.place(ev("b", "bob", 100, parent_id="a", event_type="comment.edited", edited_minute=191), now_ms=0)
    assert (edit.parent_id, edit.root_id, edit.depth, edit.parent_missing) == ("a", "a", 1, False)
    [reply] = tree.place(ev("d", "dan", 192, parent_id="c"), now_ms=0)
    assert (reply.root_id, reply.depth) == ("a", 3)
    [orphan] = tree.place(ev("e", "eve", 193, parent_id="a"), now_ms=0)  # a new reply to the retired one
    assert orphan.parent_missing and orphan.depth == 1


def _thread_events(rng: random.Random, n: int) -> list:
    events = []
    for i in range(n):
        minute = i * 7
        parent = rng.randrange(i) if i and rng.random() < 0.7 else None
        if parent is not None and rng.random() < 0.5:
            events.append(ev(f"c{i}", f"u{i % 5}", minute, parent_author=f"u{parent % 5}"))
        else:
            events.append(ev(f"c{i}", f"u{i % 5}", minute, parent_id=None if parent is None else f"c{parent}"))
    return events


@settings(max_examples=60, deadline=None)
@given(st.integers(0, 2**32), st.integers(5, 120))
def test_in_order_placements_are_unchanged_while_parents_are_recent(seed: int, n: int) -> None:
    """Replies within the retention of their parent are placed as without retention; the state held
    stays within the retention, however long the thread runs."""
    rng = random.Random(seed)
    events = _thread_events(rng, n)
    keep_all, bounded = ThreadTree({}), ThreadTree({}, retention_ms=10 * 24 * HOUR_MS)
    quiet = ThreadTree({}, quiet_ms=HOUR_MS)  # fed within a minute: the quiet rule never applies
    short = ThreadTree({}, retention_ms=2 * HOUR_MS)
    for e in events:
        full = [(p.event.comment_id, p.parent_id, p.depth, p.revision) for p in keep_all.place(e, now_ms=0)]
        assert [(p.event.comment_id, p.parent_id, p.depth, p.revision) for p in bounded.place(e, now_ms=0)] == full
        assert [(p.event.comment_id, p.parent_id, p.depth, p.revision) for p in quiet.place(e, now_ms=0)] == full
        assert quiet.retire(now_ms=0) == 0
        short.place(e, now_ms=0)
        short.retire(now_ms=0)
        nodes = [k for k in short.store if k.startswith("n|")]
        assert len(nodes) <= 2 * 60 // 7 + 1  # the last 2 h of the thread
