"""The duplicate-text spam signal (note_fingerprint) does not depend on the order copies arrive in."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from streams.enrich.compose import MAX_AUTHORS_PER_FINGERPRINT, note_fingerprint

FP = "0123456789abcdef"

# (author, posted_ms): few authors and few distinct times, so repeats and ties are common.
copies = st.lists(st.tuples(st.sampled_from("abcdefg"), st.integers(0, 6).map(lambda m: m * 60_000)), max_size=25)


def run(order: list[tuple[str, int]], store: dict[str, Any] | None = None) -> list[int]:
    state: dict[str, Any] = {} if store is None else store
    return [note_fingerprint(state, FP, author, posted) for author, posted in order]


def truth(all_copies: list[tuple[str, int]], author: str, posted: int) -> int:
    """Distinct other authors whose copy was posted strictly earlier (event time)."""
    return len({a for a, t in all_copies if a != author and t < posted})


@settings(max_examples=300, deadline=None)
@given(copies, st.randoms(use_true_random=False))
def test_any_event_time_order_gives_the_same_counts(items: list[tuple[str, int]], rnd: Any) -> None:
    # Two arrivals in event-time order that differ in how ties and authors interleave (what two runs
    # of one input over several partitions do) give every comment the same count: the true one.
    first = sorted(items, key=lambda c: c[1])
    second = list(items)
    rnd.shuffle(second)
    second.sort(key=lambda c: c[1])  # stable: ties stay shuffled
    counts_first = dict(zip(map(id, first), run(first), strict=True))
    counts_second = dict(zip(map(id, second), run(second), strict=True))
    assert counts_first == counts_second
    for item in items:
        assert counts_first[id(item)] == truth(items, *item)


@settings(max_examples=300, deadline=None)
@given(copies, st.randoms(use_true_random=False))
def test_state_and_replays_do_not_depend_on_arrival_order(items: list[tuple[str, int]], rnd: Any) -> None:
    shuffled = list(items)
    rnd.shuffle(shuffled)
    in_order: dict[str, Any] = {}
    any_order: dict[str, Any] = {}
    run(sorted(items, key=lambda c: c[1]), in_order)
    run(shuffled, any_order)
    assert in_order.get(f"fp|{FP}") == any_order.get(f"fp|{FP}")
    # A replay (after a crash, or the same file fed again) gives each comment its true count.
    replayed = run(shuffled, any_order)
    assert replayed == [truth(items, *item) for item in shuffled]


def test_same_minute_copies_do_not_count_each_other_but_earlier_ones_do() -> None:
    store: dict[str, Any] = {}
    assert note_fingerprint(store, FP, "b", 60_000) == 0
    assert note_fingerprint(store, FP, "a", 60_000) == 0  # same time as b: arrival order is arbitrary
    assert note_fingerprint(store, FP, "c", 120_000) == 2
    assert note_fingerprint(store, FP, "a", 180_000) == 2  # a's own earlier copy does not count
    assert note_fingerprint(store, "", "a", 0) == 0


def test_a_late_arriving_earlier_copy_lowers_the_stored_time() -> None:
    store: dict[str, Any] = {}
    note_fingerprint(store, FP, "b", 300_000)
    note_fingerprint(store, FP, "b", 60_000)  # b's earlier copy arrives late
    assert store[f"fp|{FP}"] == [["b", 60_000]]
    assert note_fingerprint(store, FP, "a", 120_000) == 1


def test_only_the_earliest_authors_are_kept() -> None:
    store: dict[str, Any] = {}
    authors = [f"u{i:03d}" for i in range(MAX_AUTHORS_PER_FINGERPRINT + 10)]
    for i, author in reversed(list(enumerate(authors))):
        note_fingerprint(store, FP, author, i * 1000)
    kept = store[f"fp|{FP}"]
    assert [a for a, _ in kept] == authors[:MAX_AUTHORS_PER_FINGERPRINT]
    assert note_fingerprint(store, FP, "late", 10**9) == MAX_AUTHORS_PER_FINGERPRINT


def test_old_state_shape_still_reads() -> None:
    # Before event-time counting the state was a bare list of names in arrival order.
    store: dict[str, Any] = {f"fp|{FP}": ["a", "b"]}
    assert note_fingerprint(store, FP, "c", 0) == 2
    assert note_fingerprint(store, FP, "a", 0) == 1


def reference_note(store: dict[str, Any], author: str, posted: int) -> int:
    """note_fingerprint without its shortcuts: rebuild, sort and cut the list on every call."""
    first_seen = {str(name): int(at) for name, at in store.get(f"fp|{FP}", [])}
    others = sum(1 for name, at in first_seen.items() if name != author and at < posted)
    if posted < first_seen.get(author, posted + 1):
        first_seen[author] = posted
    kept = sorted(first_seen.items(), key=lambda item: (item[1], item[0]))[:MAX_AUTHORS_PER_FINGERPRINT]
    store[f"fp|{FP}"] = [[name, at] for name, at in kept]
    return others


# Enough authors to fill the kept list, with ties in time and repeats.
many_copies = st.lists(
    st.tuples(st.integers(0, 80).map(lambda i: f"u{i:02d}"), st.integers(0, 40).map(lambda m: m * 1000)),
    min_size=MAX_AUTHORS_PER_FINGERPRINT * 2,
    max_size=200,
)


@settings(max_examples=60, deadline=None)
@given(many_copies)
def test_counts_and_state_equal_the_plain_rebuild_when_the_list_is_full(items: list[tuple[str, int]]) -> None:
    store: dict[str, Any] = {}
    reference: dict[str, Any] = {}
    for author, posted in items:
        assert note_fingerprint(store, FP, author, posted) == reference_note(reference, author, posted)
        assert store.get(f"fp|{FP}") == reference.get(f"fp|{FP}")
