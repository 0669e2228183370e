"""The commit rule of streams.kafka_consumer: never commit past an offset that was not processed."""

from __future__ import annotations

from faust.types import TP
from hypothesis import given
from hypothesis import strategies as st
from intervaltree import IntervalTree

from streams.kafka_consumer import SeekLog, next_commit_offset


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
