"""The quiet-time schedule (streams.enrich.quiet): every touched name comes back once its hour is
due, and a batch rewrites a bounded segment, not the hour's whole list."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from streams.enrich.quiet import HOUR_MS, SEGMENT_NAMES, QuietSchedule
from streams.windows.engine.store import WriteBuffer


def test_an_hour_of_many_names_is_kept_in_bounded_segments_and_all_come_back() -> None:
    store: dict[str, object] = {}
    schedule = QuietSchedule(store, "fq")
    names = [f"name-{i}" for i in range(5 * SEGMENT_NAMES + 7)]
    for name in names:
        schedule.touch("0", name, now_ms=10, last_touched_ms=None)
    segments = {k: v for k, v in store.items() if k.startswith("fq|0|0|") and not k.endswith("|n")}
    assert len(segments) == 6
    assert max(len(v) for v in segments.values()) == SEGMENT_NAMES  # type: ignore[arg-type]
    assert list(schedule.due("0", quiet_before_ms=HOUR_MS)) == names
    assert store == {"fq|0": []}


def test_a_batch_persists_only_the_segment_it_appended_to() -> None:
    buffer = WriteBuffer({})
    schedule = QuietSchedule(buffer, "q")
    for i in range(3 * SEGMENT_NAMES):  # earlier batches: three full segments
        schedule.touch("1", f"t{i}", now_ms=0, last_touched_ms=None)
        if i % 100 == 0:
            buffer.flush()
    buffer.flush()
    schedule.touch("1", "one more", now_ms=0, last_touched_ms=None)
    written = dict(buffer.write_order())
    assert set(written) == {"q|1|0|n", "q|1|0|3"}
    assert written["q|1|0|3"] == ["one more"]


def test_the_older_unsegmented_bucket_of_an_hour_is_still_read_and_dropped() -> None:
    store: dict[str, object] = {"e|2": [0], "e|2|0": ["old-a", "old-b"]}
    schedule = QuietSchedule(store, "e")
    schedule.touch("2", "new", now_ms=5, last_touched_ms=None)
    assert sorted(schedule.due("2", quiet_before_ms=HOUR_MS)) == ["new", "old-a", "old-b"]
    assert store == {"e|2": []}


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 40), st.integers(0, 4 * HOUR_MS)), max_size=3 * SEGMENT_NAMES))
def test_due_hands_back_every_touch_of_the_hours_before_the_cutoff(touches: list[tuple[int, int]]) -> None:
    """Against a plain model: one list of (name, hour) per touch."""
    store: dict[str, object] = {}
    schedule = QuietSchedule(store, "q")
    last: dict[str, int] = {}
    expected: list[tuple[int, str]] = []
    for number, at_ms in touches:
        name = f"n{number}"
        if name not in last or last[name] // HOUR_MS != at_ms // HOUR_MS:
            expected.append((at_ms // HOUR_MS, name))
        schedule.touch("0", name, at_ms, last.get(name))
        last[name] = at_ms
    cutoff = 2 * HOUR_MS
    due = list(schedule.due("0", quiet_before_ms=cutoff))
    assert sorted(due) == sorted(name for hour, name in expected if (hour + 1) * HOUR_MS <= cutoff)
    left = [k for k in store if k.count("|") >= 2]
    assert all(int(k.split("|")[2]) >= 2 for k in left)
