"""The commit rule of streams.kafka_consumer: never commit past an offset that was not processed."""

from __future__ import annotations

from faust.types import TP
from hypothesis import given
from hypothesis import strategies as st
from intervaltree import IntervalTree

from streams.kafka_consumer import GapCheck, SeekLog, next_commit_offset


def gaps_of(*ranges: tuple[int, int]) -> IntervalTree:
    tree = IntervalTree()
    for begin, end in ranges:
        tree.addi(begin, end)
    return tree


def test_commits_the_run_of_processed_offsets_from_the_head() -> None:
    acked = [12, 10, 11, 14]
    assert next_commit_offset(acked, IntervalTree(), committed=10) == 13
    assert acked == [14]  # what was committed is consumed; the rest waits for 13


def test_waits_while_the_head_offset_is_unprocessed() -> None:
    # Faust's own rule let exactly this through: committed 10, 11.. processed, 10 not.
    acked = [11, 12]
    assert next_commit_offset(acked, IntervalTree(), committed=10) is None
    assert acked == [11, 12]


def test_offsets_that_do_not_exist_count_as_done() -> None:
    # 10 and 11 are transaction markers (no records); 12 and 13 processed.
    assert next_commit_offset([12, 13], gaps_of((10, 12)), committed=10) == 14


def test_a_gap_does_not_cover_unprocessed_records_after_it() -> None:
    assert next_commit_offset([10, 13], gaps_of((11, 12)), committed=10) == 12


def test_nothing_acknowledged_nothing_to_commit() -> None:
    assert next_commit_offset([], IntervalTree(), committed=None) is None


@given(
    committed=st.integers(0, 50),
    length=st.integers(0, 60),
    data=st.data(),
)
def test_never_commits_past_an_unprocessed_offset(committed: int, length: int, data: st.DataObject) -> None:
    offsets = list(range(committed, committed + length))
    processed = set(data.draw(st.lists(st.sampled_from(offsets), unique=True))) if offsets else set()
    missing = set(data.draw(st.lists(st.sampled_from(offsets), unique=True))) - processed if offsets else set()
    gaps = IntervalTree()
    for o in missing:
        gaps.addi(o, o + 1)
    result = next_commit_offset(list(processed), gaps, committed)
    if not processed:
        assert result is None
        return
    # Gaps count up to the highest processed offset; beyond it nothing is known yet.
    done = processed | {o for o in missing if o < max(processed)}
    if committed not in done:
        assert result is None
    else:
        first_open = next(o for o in range(committed, committed + length + 1) if o not in done)
        assert result == first_open


def test_seek_log_numbers_each_seek() -> None:
    seeks = SeekLog()
    tp = TP("t", 0)
    before = seeks.now()
    seeks.mark(tp, 42)
    last = seeks.last(tp)
    assert last is not None and last.seq > before and last.target == 42
    assert seeks.last(TP("t", 1)) is None


P0 = TP("comments.raw", 0)


def test_a_gap_is_read_again_before_it_counts() -> None:
    gaps = GapCheck()
    assert gaps.verdict(P0, last_read=99, offset=100, fetch=1) == GapCheck.DELIVER
    # A batch starts at 250 although 100-249 were never delivered: fetch again from 100.
    assert gaps.verdict(P0, last_read=99, offset=250, fetch=2) == GapCheck.READ_AGAIN
    # The very next fetch starts at 250 again: 100-249 do not exist.
    assert gaps.verdict(P0, last_read=99, offset=250, fetch=3) == GapCheck.CONFIRMED
    assert gaps.verdict(P0, last_read=260, offset=261, fetch=4) == GapCheck.DELIVER


def test_a_gap_counts_only_on_the_fetch_right_after_it_was_found() -> None:
    gaps = GapCheck()
    assert gaps.verdict(P0, last_read=99, offset=250, fetch=2) == GapCheck.READ_AGAIN
    # Fetch 3 (from 100) was dropped before it reached the check; fetch 4 proves nothing.
    assert gaps.verdict(P0, last_read=99, offset=250, fetch=4) == GapCheck.READ_AGAIN
    assert gaps.verdict(P0, last_read=99, offset=250, fetch=5) == GapCheck.CONFIRMED


def test_dropped_records_that_come_back_are_reported() -> None:
    gaps = GapCheck()
    assert gaps.verdict(P0, last_read=99, offset=250, fetch=1) == GapCheck.READ_AGAIN
    assert gaps.verdict(P0, last_read=99, offset=100, fetch=2) == GapCheck.RECOVERED
    assert gaps.verdict(P0, last_read=99, offset=250, fetch=3) == GapCheck.READ_AGAIN  # a new gap, checked anew


def test_no_read_position_no_gap() -> None:
    assert GapCheck().verdict(P0, last_read=None, offset=5000, fetch=1) == GapCheck.DELIVER


@given(
    log_holes=st.sets(st.integers(0, 199), max_size=30),
    drops=st.lists(st.one_of(st.none(), st.integers(0, 10)), min_size=1, max_size=80),
)
def test_a_partition_read_through_gap_checks_loses_no_record(log_holes: set[int], drops: list[int | None]) -> None:
    """A model of the consumer: the log holds offsets 0-199 except `log_holes` (transaction markers,
    compacted records); each fetch returns the next 10 records from the fetch position, which then
    moves past them. The framework may break off a batch after delivering its first `k` records
    (`drops`; 0: the whole batch, before the check sees it), dropping the rest. A batch whose first
    record fails the gap check seeks back. Every record of the log is delivered, in order."""
    log = [o for o in range(200) if o not in log_holes]
    gaps = GapCheck()
    delivered: list[int] = []
    last_read = -1  # seeked to the log start, 0: the last offset read is just before it
    position = fetches = 0
    plan = iter(drops)
    for _ in range(5000):
        batch = [o for o in log if o >= position][:10]
        if not batch:
            break
        position = batch[-1] + 1
        fetches += 1
        k = next(plan, None)
        if k == 0:
            continue  # dropped before any record reached the check
        if gaps.verdict(P0, last_read, batch[0], fetches) == GapCheck.READ_AGAIN:
            position = last_read + 1
            continue
        taken = batch if k is None else batch[:k]
        delivered.extend(taken)
        last_read = taken[-1]
    assert delivered == log
