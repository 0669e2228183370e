from __future__ import annotations

import copy
import json
import random
from datetime import UTC, datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from streams.enrich.thread import ThreadTree
from streams.models import CommentEvent

T0 = datetime(2018, 3, 20, 12, 0, tzinfo=UTC)


def ev(
    cid: str,
    author: str,
    minute: int,
    *,
    parent_id: str | None = None,
    parent_author: str | None = None,
    body: str = "",
    event_type: str = "comment.created",
    edited_minute: int | None = None,
) -> CommentEvent:
    return CommentEvent(
        event_id=f"e-{cid}-{event_type}",
        event_type=event_type,
        source="test",
        thread_id="th",
        comment_id=cid,  # type: ignore[arg-type]
        parent_id=parent_id,
        parent_author=parent_author,
        author=author,
        posted_at=T0 + timedelta(minutes=minute),
        edited_at=None if edited_minute is None else T0 + timedelta(minutes=edited_minute),
        body=body,
    )


def positions(tree: ThreadTree) -> dict[str, tuple[str | None, str, int, bool]]:
    out = {}
    for key, node in tree.store.items():
        if key.startswith("n|"):
            out[node["id"]] = (node["p"], node["r"], node["d"], node["m"])
    return out


def test_in_order_chain() -> None:
    tree = ThreadTree({})
    tree.place(ev("a", "alice", 0), now_ms=0)
    tree.place(ev("b", "bob", 1, parent_id="a"), now_ms=0)
    [p] = tree.place(ev("c", "carol", 2, parent_author="bob"), now_ms=0)
    assert (p.parent_id, p.root_id, p.depth, p.parent_missing) == ("b", "a", 2, False)


def test_reply_before_parent_is_fixed_when_parent_arrives() -> None:
    tree = ThreadTree({})
    [c] = tree.place(ev("c", "carol", 2, parent_id="b"), now_ms=0)
    assert (c.depth, c.parent_missing, c.revision) == (1, True, 0)
    # b arrives (itself waiting for a): c is re-emitted under b.
    out = tree.place(ev("b", "bob", 1, parent_id="a"), now_ms=0)
    assert [(p.event.comment_id, p.depth, p.root_id, p.parent_missing, p.revision) for p in out] == [
        ("b", 1, "a", True, 0),
        ("c", 2, "a", False, 1),
    ]
    # a arrives: b is no longer missing its parent; c's position does not change, so it is not re-emitted.
    out = tree.place(ev("a", "alice", 0), now_ms=0)
    assert [(p.event.comment_id, p.depth, p.root_id, p.parent_missing, p.revision) for p in out] == [
        ("a", 0, "a", False, 0),
        ("b", 1, "a", False, 1),
    ]
    assert positions(tree)["c"] == ("b", "a", 2, False)


def test_a_moved_subtree_moves_with_its_root() -> None:
    tree = ThreadTree({})
    tree.place(ev("c", "carol", 3, parent_id="b"), now_ms=0)
    tree.place(ev("b", "bob", 2, parent_id="x"), now_ms=0)
    tree.place(ev("x", "xena", 1, parent_id="a"), now_ms=0)
    out = tree.place(ev("a", "alice", 0), now_ms=0)
    assert {p.event.comment_id: p.depth for p in out} == {"a": 0, "x": 1}
    assert positions(tree) == {
        "a": (None, "a", 0, False),
        "x": ("a", "a", 1, False),
        "b": ("x", "a", 2, False),
        "c": ("b", "a", 3, False),
    }


def test_parent_by_author_is_latest_earlier_comment_and_later_arrivals_can_be_closer() -> None:
    tree = ThreadTree({})
    tree.place(ev("x1", "xavier", 0), now_ms=0)
    [r] = tree.place(ev("r", "rita", 10, parent_author="xavier"), now_ms=0)
    assert r.parent_id == "x1"
    # A comment by xavier at minute 5 arrives late: it is the closer earlier comment, so r moves.
    out = tree.place(ev("x2", "xavier", 5, parent_id="x1"), now_ms=0)
    moved = {p.event.comment_id: p for p in out}
    assert moved["r"].parent_id == "x2" and moved["r"].depth == 2 and moved["r"].revision == 1
    # One after r's time does not attract it.
    out = tree.place(ev("x3", "xavier", 20), now_ms=0)
    assert [p.event.comment_id for p in out] == ["x3"]


def test_waiting_for_an_author_who_has_not_posted_yet() -> None:
    tree = ThreadTree({})
    [r] = tree.place(ev("r", "rita", 10, parent_author="ghost"), now_ms=0)
    assert (r.parent_id, r.depth, r.parent_missing) == (None, 1, True)
    out = tree.place(ev("g", "ghost", 3), now_ms=0)
    assert {p.event.comment_id: (p.parent_id, p.depth, p.parent_missing) for p in out}["r"] == ("g", 1, False)


def test_self_reply_does_not_pick_itself() -> None:
    tree = ThreadTree({})
    [late] = tree.place(ev("f2", "fire", 41, parent_author="fire"), now_ms=0)
    assert late.parent_id is None and late.parent_missing
    out = tree.place(ev("f1", "fire", 31, parent_author="expat"), now_ms=0)
    placed = {p.event.comment_id: p for p in out}
    assert placed["f2"].parent_id == "f1" and placed["f2"].depth == 2


def test_redelivery_changes_nothing() -> None:
    tree = ThreadTree({})
    events = [ev("a", "alice", 0), ev("b", "bob", 1, parent_id="a"), ev("c", "carol", 2, parent_author="bob")]
    first = [tree.place(e, now_ms=0)[0] for e in events]
    snapshot = copy.deepcopy(dict(tree.store))
    again = [tree.place(e, now_ms=0) for e in events]
    assert all(len(a) == 1 for a in again)
    assert [a[0] for a in again] == first
    assert dict(tree.store) == snapshot


def test_edits_win_and_late_older_versions_do_not_revert_them() -> None:
    tree = ThreadTree({})
    tree.place(ev("a", "alice", 0, body="v1"), now_ms=0)
    [edited] = tree.place(ev("a", "alice", 0, body="v2", event_type="comment.edited", edited_minute=5), now_ms=0)
    assert edited.event.body == "v2" and edited.revision == 1
    [replayed] = tree.place(ev("a", "alice", 0, body="v1"), now_ms=0)
    assert replayed.event.body == "v2" and replayed.revision == 1


def test_waiting_replies_expire() -> None:
    tree = ThreadTree({}, pending_ttl_ms=1000)
    tree.place(ev("c", "carol", 2, parent_id="b"), now_ms=0)
    out = tree.place(ev("b", "bob", 1), now_ms=5000)
    assert [p.event.comment_id for p in out] == ["b"]  # too late to fix c
    assert positions(tree)["c"] == ("b", "b", 1, True)


@settings(max_examples=60, deadline=None)
@given(st.integers(min_value=0, max_value=10_000))
def test_any_arrival_order_gives_the_in_order_tree(seed: int) -> None:
    rng = random.Random(seed)
    authors = ["ann", "ben", "cat", "dan"]
    events = []
    for i in range(25):
        author = rng.choice(authors)
        kind = rng.random()
        if i and kind < 0.4:
            parent = events[rng.randrange(len(events))]
            events.append(ev(f"c{i}", author, i, parent_id=parent.comment_id))
        elif i and kind < 0.7:
            events.append(ev(f"c{i}", author, i, parent_author=rng.choice(authors)))
        else:
            events.append(ev(f"c{i}", author, i))
    in_order = ThreadTree({}, pending_ttl_ms=10**12)
    for e in events:
        in_order.place(e, now_ms=0)
    shuffled = ThreadTree({}, pending_ttl_ms=10**12)
    order = events[:]
    rng.shuffle(order)
    latest = {}
    for e in order:
        for p in shuffled.place(e, now_ms=0):
            latest[p.event.comment_id] = (p.parent_id, p.root_id, p.depth, p.parent_missing)
    assert positions(shuffled) == positions(in_order)
    assert latest == positions(in_order)  # what was emitted last per comment is the final truth
    json.dumps(dict(shuffled.store))  # changelog-serialisable


@settings(max_examples=60, deadline=None)
@given(st.integers(min_value=0, max_value=10_000), st.integers(min_value=1, max_value=12))
def test_batched_writes_in_place_give_the_same_tree_and_leave_the_store_alone(seed: int, batch: int) -> None:
    """Over a WriteBuffer (the worker's tables) the tree changes the lists a batch already wrote in
    place (`owned`): same placements and state as over a plain dict, and the stored values never
    change before the batch is flushed (a failed batch is replayed against them)."""
    from streams.windows.engine import WriteBuffer

    rng = random.Random(seed)
    authors = ["ann", "ben", "cat"]
    events = [
        ev(f"c{i}", rng.choice(authors), i, parent_author=rng.choice(authors) if i and rng.random() < 0.7 else None)
        for i in range(30)
    ]
    rng.shuffle(events)
    plain = ThreadTree({}, pending_ttl_ms=10**12)
    backing: dict[str, object] = {}
    buffered = ThreadTree(WriteBuffer(backing), pending_ttl_ms=10**12)
    for start in range(0, len(events), batch):
        before = copy.deepcopy(backing)
        for e in events[start : start + batch]:
            assert buffered.place(e, now_ms=0) == plain.place(e, now_ms=0)
        assert backing == before  # nothing stored was changed in place
        buffered.store.flush()  # type: ignore[attr-defined]
    assert backing == dict(plain.store)


def test_replies_waiting_for_one_parent_are_one_copy_per_batch_and_all_wake() -> None:
    """Replies to a parent not seen yet wait in one dict: a batch changes its own copy of it (a copy
    per reply, and per reply woken, made 20,000 of them take 7.5 s), with the same placements as a
    plain store and nothing stored changed before the flush."""
    from streams.windows.engine import WriteBuffer

    backing: dict[str, object] = {}
    buffer = WriteBuffer(backing)
    buffered, plain = ThreadTree(buffer, pending_ttl_ms=10**12), ThreadTree({}, pending_ttl_ms=10**12)
    copies = set()
    for i in range(300):
        reply = ev(f"r{i}", f"u{i % 7}", 1 + i // 100, parent_id="p")
        assert buffered.place(reply, now_ms=0) == plain.place(reply, now_ms=0)
        copies.add(id(buffer.owned("wi|th|p")))
    assert len(copies) == 1 and backing == {}
    buffer.flush()
    parent = ev("p", "op", 0)
    woken = buffered.place(parent, now_ms=0)
    assert woken == plain.place(parent, now_ms=0)
    assert sorted(p.event.comment_id for p in woken[1:]) == sorted(f"r{i}" for i in range(300))
    assert all(p.parent_id == "p" and p.depth == 1 and not p.parent_missing for p in woken[1:])
    buffer.flush()
    assert "wi|th|p" not in backing and backing == dict(plain.store)


def test_a_child_listed_twice_after_a_partial_persist_moves_out_of_both_entries() -> None:
    """A new child is appended without scanning its parent's children (a pile-on made that scan
    quadratic). A crash that persisted the children list but not the child's node leaves it listed
    twice after the replay; a later move takes both entries out."""
    tree = ThreadTree({})
    tree.place(ev("p", "ann", 0), now_ms=0)
    tree.place(ev("q", "ben", 1), now_ms=0)
    tree.store["k|th|p"] = ["c"]  # persisted before the crash; the node n|th|c was not
    tree.place(ev("c", "cat", 2, parent_id="p"), now_ms=0)
    assert tree.store["k|th|p"] == ["c", "c"]
    moved = tree.place(ev("c", "cat", 2, parent_id="q", event_type="comment.edited", edited_minute=3), now_ms=0)
    assert (moved[0].parent_id, moved[0].depth) == ("q", 1)
    assert "k|th|p" not in tree.store and tree.store["k|th|q"] == ["c"]
