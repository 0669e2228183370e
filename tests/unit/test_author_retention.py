"""Author counts let go of retired comments (streams.enrich.authors): enrich's retirement notices
bound the counts' state, and no replay or redelivery counts a comment twice."""

from __future__ import annotations

import random
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from streams.enrich.authors import RetiredComments, SealedThreads, expire, forget, observe
from streams.enrich.flags import FlagScorer
from streams.models import CommentEvent
from streams.steps import authors
from streams.steps.enrich import EnrichStep

HOUR_MS = 3_600_000
START = datetime(2024, 5, 1, tzinfo=UTC)


def count(store: dict[str, Any], author: str, thread: str, comment: str, posted_ms: int) -> tuple[int, int]:
    stats = observe(store, author=author, thread_id=thread, comment_id=comment, posted_ms=posted_ms, flagged=False)
    return stats.comment_count, stats.thread_count


def test_a_notice_drops_the_member_keys_and_a_replay_after_it_is_not_counted_again() -> None:
    store: dict[str, Any] = {}
    assert count(store, "ann", "t", "c1", 1_000) == (1, 1)
    assert count(store, "ann", "t", "c2", 2_000) == (2, 1)
    assert forget(store, [RetiredComments("ann", "t", ["c1"], 1_000)]) == 1
    assert "m|ann|c1" not in store and "m|ann|c2" in store
    assert store["t|ann|t"] == 1_000
    assert count(store, "ann", "t", "c1", 1_000) == (2, 1)  # replayed rows read before the notice
    assert count(store, "ann", "t", "c2", 2_000) == (2, 1)  # still held: the usual redelivery
    assert forget(store, [RetiredComments("ann", "t", ["c1"], 1_000)]) == 0  # a notice read twice
    assert count(store, "ann", "t", "c3", 3_000) == (3, 1)  # newer than the horizon: a new comment
    assert count(store, "ann", "u", "c4", 500) == (4, 2)  # another thread has its own horizon


def test_an_edit_of_a_comment_still_held_moves_the_flagged_count_once() -> None:
    store: dict[str, Any] = {}
    observe(store, author="ann", thread_id="t", comment_id="c1", posted_ms=1_000, flagged=False)
    observe(store, author="ann", thread_id="t", comment_id="c2", posted_ms=500, flagged=False)
    forget(store, [RetiredComments("ann", "t", ["c2"], 1_500)])  # c2 edited at 1.5 s, then retired
    stats = observe(store, author="ann", thread_id="t", comment_id="c1", posted_ms=1_000, flagged=True)
    assert (stats.comment_count, stats.flagged_count) == (2, 1)


def test_counts_written_before_notices_were_sent_still_count_and_forget() -> None:
    store: dict[str, Any] = {"s|ann": {"c": 1, "f": 0, "t": 1, "fs": 1_000}, "m|ann|c1": 0, "t|ann|t": 1}
    assert count(store, "ann", "t", "c1", 1_000) == (1, 1)
    assert count(store, "ann", "t", "c2", 2_000) == (2, 1)
    forget(store, [RetiredComments("ann", "t", ["c1", "c2"], 2_000)])
    assert store["t|ann|t"] == 2_000 and not any(k.startswith("m|") for k in store)


def test_a_notice_for_an_author_never_counted_here_writes_nothing() -> None:
    store: dict[str, Any] = {}
    assert forget(store, [RetiredComments("ann", "t", ["c1"], 1_000)]) == 0
    assert store == {}


def test_a_last_notice_seals_the_thread_key_and_a_comment_before_its_expiry_unseals_it() -> None:
    store: dict[str, Any] = {}
    count(store, "ann", "t", "c1", 1_000)
    sealed: list[tuple[str, list[int]]] = []
    forget(store, [RetiredComments("ann", "t", ["c1"], 1_000, last=True)], sealed, at=(3, 41))
    assert sealed == [("t|ann|t", [1_000, 3, 41])] and store["t|ann|t"] == [1_000, 3, 41]
    assert count(store, "ann", "t", "c1", 1_000) == (1, 1)  # a replay: still known to be counted
    forget(store, [RetiredComments("ann", "t", ["c1"], 1_000, last=True)], at=(3, 57))  # read again
    assert store["t|ann|t"] == [1_000, 3, 41]  # still sealed, where it was first
    assert count(store, "ann", "t", "c2", 2_000) == (2, 1)  # the author is back: same thread
    assert store["t|ann|t"] == 1_000
    assert expire(store, sealed) == 0 and "t|ann|t" in store  # unsealed since: kept


def test_an_expired_thread_key_is_gone_and_only_a_return_counts_the_thread_again() -> None:
    store: dict[str, Any] = {}
    count(store, "ann", "t", "c1", 1_000)
    count(store, "ann", "u", "c2", 1_500)
    sealed: list[tuple[str, list[int]]] = []
    forget(store, [RetiredComments("ann", "t", ["c1"], 1_000, last=True)], sealed)
    forget(store, [RetiredComments("ann", "t", ["c1"], 1_000, last=True)], sealed)  # read twice
    assert expire(store, sealed) == 1
    assert sorted(store) == ["m|ann|c2", "s|ann", "t|ann|u"]
    assert forget(store, [RetiredComments("ann", "t", ["c1"], 1_000, last=True)]) == 0  # nothing to seal
    assert "t|ann|t" not in store
    assert count(store, "ann", "t", "c3", 9_000) == (3, 3)  # the documented price: a return counts again


def test_a_notice_that_is_not_the_last_keeps_the_key_unsealed() -> None:
    store: dict[str, Any] = {}
    count(store, "ann", "t", "c1", 1_000)
    count(store, "ann", "t", "c2", 5_000)
    sealed: list[tuple[str, list[int]]] = []
    forget(store, [RetiredComments("ann", "t", ["c1"], 1_000, last=False)], sealed)
    assert sealed == [] and store["t|ann|t"] == 1_000


def test_sealed_keys_come_due_only_once_the_committed_offset_passed_their_notice() -> None:
    pending = SealedThreads()
    pending.add(0, 10, [("t|a|x", [1, 0, 10])])
    pending.add(0, 20, [("t|b|x", [2, 0, 20])])
    pending.add(1, 6, [])
    assert pending.due(0, None) == []  # nothing confirmed committed yet
    assert pending.due(0, 10) == []  # a replay from 10 re-reads the notice's batch
    assert pending.due(0, 11) == [("t|a|x", [1, 0, 10])]
    assert pending.due(0, 11) == []
    assert pending.due(0, 21) == [("t|b|x", [2, 0, 20])]


def test_a_restart_or_a_rebalance_finds_the_sealed_keys_of_its_partitions_in_the_table() -> None:
    store: dict[str, Any] = {}
    for author, partition, offset in (("ann", 0, 7), ("bob", 1, 9), ("cy", 2, 4)):
        count(store, author, "t", f"c-{author}", 1_000)
        forget(store, [RetiredComments(author, "t", [f"c-{author}"], 1_000, last=True)], at=(partition, offset))
    count(store, "dee", "t", "c-dee", 1_000)  # not sealed
    found = SealedThreads.of_store(store, {0, 1})
    assert found.due(0, 8) == [("t|ann|t", [1_000, 0, 7])]
    assert found.due(1, 9) == [] and found.due(1, 10) == [("t|bob|t", [1_000, 1, 9])]
    assert found.due(2, 100) == []  # not this worker's partition
    assert expire(store, [("t|ann|t", [1_000, 0, 7])]) == 1 and "t|ann|t" not in store


def _stream(seed: int, n: int) -> list[CommentEvent]:
    """n comments over ~n/10 hours: threads that live a few hours, authors that span many threads,
    a few replies to an earlier comment and some out-of-order arrival."""
    rng = random.Random(seed)
    out = []
    for i in range(n):
        posted = START + timedelta(minutes=6 * i + rng.randint(-20, 0))
        thread = f"t{i // 40}"
        out.append(
            CommentEvent(
                event_id=f"e{i}",
                source="author-retention-test",
                thread_id=thread,
                comment_id=f"c{i}",
                parent_id=f"c{i - 1}" if i % 40 and rng.random() < 0.5 else None,
                author=f"a{rng.randint(0, 24)}",
                posted_at=posted,
                body=f"comment {i} about {rng.choice(['rain', 'trains', 'taxes', 'tea'])}",
            )
        )
    return out


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_with_retention_the_counts_are_exact_bounded_and_survive_replays(seed: int) -> None:
    """The enrich and authors steps in a row, with the event-time retention on: every author's
    counts equal a recount of the raw comments, the per-comment and per-thread keys stay bounded by
    the retention, and crashes that replay the authors' input from their committed offset (lagging
    what they processed, at-least-once) change no count."""
    comments = _stream(seed, 1_200)
    step = EnrichStep({}, {}, FlagScorer(), 1, retention_ms=6 * HOUR_MS)
    store: dict[str, Any] = {}
    sent: list[tuple[str, list[Any]]] = []  # what enrich sent to the authors, in order (offsets)
    rng = random.Random(seed)
    committed = 0  # the authors' committed offset into `sent`
    pending = SealedThreads()
    most_members = most_thread_keys = expired = replayed = 0

    def process(offset: int) -> None:
        nonlocal expired
        expired += authors.expire(store, pending.due(0, committed))
        kind, batch = sent[offset]
        if kind == "rows":
            authors.count(store, batch)
        else:
            sealed: list[tuple[str, list[int]]] = []
            authors.forget(store, batch, sealed, at=(0, offset))
            pending.add(0, offset, sealed)

    for start in range(0, len(comments), 50):
        out = step.run([(0, comments[start : start + 50])], now_ms=0)
        assert not out.retired
        sent.append(("rows", out.rows))
        process(len(sent) - 1)
        if out.retired_authors:
            sent.append(("notices", out.retired_authors))
            process(len(sent) - 1)
        if rng.random() < 0.3:  # a crash: what was processed since the last commit is read again
            pending = SealedThreads.of_store(store, {0})  # rebuilt from the restored table
            for offset in range(committed, len(sent)):
                process(offset)
            replayed += len(sent) - committed
        committed = max(committed, len(sent) - rng.randint(0, 8))  # commits lag a few batches
        most_members = max(most_members, sum(k.startswith("m|") for k in store))
        most_thread_keys = max(most_thread_keys, sum(k.startswith("t|") for k in store))
    expected_comments: dict[str, int] = defaultdict(int)
    expected_threads: dict[str, set[str]] = defaultdict(set)
    for c in comments:
        expected_comments[c.author] += 1
        expected_threads[c.author].add(c.thread_id)
    counts = {k[2:]: (v["c"], v["t"]) for k, v in store.items() if k.startswith("s|")}
    assert counts == {a: (expected_comments[a], len(expected_threads[a])) for a in expected_comments}
    assert sum(len(n.comment_ids) for kind, batch in sent if kind == "notices" for n in batch) > 900
    assert replayed > 20
    assert most_members < 300  # 6 h of comments at one per 6 minutes, not all 1,200
    pairs = sum(len(threads) for threads in expected_threads.values())
    assert expired > pairs * 0.7 and most_thread_keys < pairs / 3  # not one key per pair ever seen
