"""The batch steps (streams/steps/) and the envelopes (streams/batches.py): pure, no Kafka."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import msgspec
import pytest
from aiokafka.partitioner import DefaultPartitioner
from hypothesis import given, settings
from hypothesis import strategies as st

from streams import batches
from streams.enrich.flags import FlagScorer
from streams.models import CommentEvent
from streams.steps import authors, ingest
from streams.steps.enrich import EnrichStep, RawPositions, raw_processed_key
from streams.steps.windows import FanOut, WindowDelivery, apply, windows_partition
from streams.windows.engine import EngineOutput, WindowConfig, WindowEngine

START = datetime(2024, 5, 1, tzinfo=UTC)


def event(thread: str, i: int, *, parent: int | None = None, author: str | None = None) -> CommentEvent:
    return CommentEvent(
        event_id=f"e-{thread}-{i}",
        source="steps-test",
        thread_id=thread,
        comment_id=f"{thread}-{i}",
        parent_id=f"{thread}-{parent}" if parent is not None else None,
        author=author or f"author-{i % 3}",
        posted_at=START + timedelta(seconds=i),
        body=f"comment number {i}",
    )


# ------------------------------------------------------------------------------------------ envelopes


def test_envelopes_round_trip_in_order_and_cut_by_rows_and_bytes() -> None:
    rows = [event("t", i) for i in range(25)]
    envelopes = batches.encode_envelopes(rows, max_rows=10)
    assert len(envelopes) == 3
    decoder = batches.EnvelopeDecoder(CommentEvent)
    assert [e for env in envelopes for e in decoder.decode(env)] == rows
    small = batches.encode_envelopes(rows, target_bytes=600)
    assert len(small) > 3 and all(len(env) < 600 + 400 for env in small[:-1])


def test_a_row_larger_than_the_target_travels_alone() -> None:
    big = msgspec.structs.replace(event("t", 1), body="x" * 5000)
    envelopes = batches.encode_envelopes([event("t", 0), big, event("t", 2)], target_bytes=1000)
    assert [len(batches.EnvelopeDecoder(CommentEvent).decode(env)) for env in envelopes] == [1, 1, 1]


@settings(max_examples=100, deadline=None)
@given(
    count=st.integers(min_value=0, max_value=40),
    max_rows=st.integers(min_value=1, max_value=12),
    target_bytes=st.integers(min_value=200, max_value=3000),
)
def test_each_envelope_carries_the_raw_positions_of_its_own_rows(count: int, max_rows: int, target_bytes: int) -> None:
    rows = [event("t", i) for i in range(count)]
    raw = [(i % 3, 1000 + i) for i in range(count)]
    envelopes = batches.encode_envelopes(rows, max_rows=max_rows, target_bytes=target_bytes, raw=raw)
    decoder = batches.EnvelopeDecoder(CommentEvent)
    decoded = [decoder.decode_envelope(env) for env in envelopes]
    assert all(len(d.items) == len(d.raw) for d in decoded)
    assert [e for d in decoded for e in d.items] == rows
    assert [tuple(r) for d in decoded for r in d.raw] == raw
    # Envelopes without positions (the other topics, and comments.valid as written before) still read.
    assert [e for env in batches.encode_envelopes(rows, max_rows=max_rows) for e in decoder.decode(env)] == rows
    assert all(not decoder.decode_envelope(env).raw for env in batches.encode_envelopes(rows[:3]))


def test_an_envelope_whose_positions_do_not_match_its_items_is_refused() -> None:
    with pytest.raises(ValueError, match="2 raw positions for 1 rows"):
        batches.encode_envelopes([event("t", 0)], raw=[(0, 1), (0, 2)])
    (value,) = batches.encode_envelopes([event("t", 0), event("t", 1)], raw=[(0, 1), (0, 2)])
    broken = value.replace(b"[[0,1],[0,2]]", b"[[0,1]]")
    with pytest.raises(msgspec.ValidationError, match="1 raw positions for 2 items"):
        batches.EnvelopeDecoder(CommentEvent).decode(broken)


def test_ingest_gives_each_valid_event_its_position_in_the_batch() -> None:
    values = [msgspec.json.encode(event(f"t{i % 5}", i)) for i in range(30)]
    values[7] = b"not json"
    out = ingest.validate_batch(values, partitions=3)
    assert out.positions.keys() == out.valid.keys()
    for partition, events in out.valid.items():
        assert [values[p] for p in out.positions[partition]] == [msgspec.json.encode(e) for e in events]
    assert sorted(p for ps in out.positions.values() for p in ps) == [i for i in range(30) if i != 7]


def test_raw_positions_take_only_copies_of_what_a_persisted_batch_processed_for_read_before() -> None:
    """Valid partition 0 had processed raw partition 1 up to offset 50 and raw partition 2 up to 9."""
    store: dict[str, Any] = {raw_processed_key(0, 1): 50, raw_processed_key(0, 2): 9}
    copies = [event("t", i) for i in range(3)]  # ingest sent raw 1 offsets 49-51 again
    fresh = [event("u", i) for i in range(2)]  # raw 2 offset 10, and raw 3 (nothing yet) offset 0
    old = [event("v", 0)]  # an envelope written before positions were carried
    positions = RawPositions(store)
    positions.note(0, copies, [(1, 49), (1, 50), (1, 51)])
    positions.note(0, fresh, [(2, 10), (3, 0)])
    positions.note(0, old, [])
    positions.note(1, [event("w", 0)], [(1, 40)])  # another valid partition has its own positions
    assert [positions.read_before(e) for e in copies + fresh + old] == [True, True, False, False, False, False]
    assert sorted(positions.advanced()) == [
        (0, raw_processed_key(0, 1), 51),
        (0, raw_processed_key(0, 2), 10),
        (0, raw_processed_key(0, 3), 0),
        (1, raw_processed_key(1, 1), 40),
    ]
    replay = RawPositions(store)
    replay.note(0, copies[:2], [(1, 30), (1, 45)])  # a batch of copies only: nothing moves back
    assert replay.advanced() == [] and all(replay.read_before(e) for e in copies[:2])


def test_an_envelope_of_another_version_is_refused() -> None:
    with pytest.raises(batches.UnknownEnvelope):
        batches.EnvelopeDecoder(CommentEvent).decode(b'{"v":2,"items":[]}')


@settings(max_examples=200, deadline=None)
@given(st.text(min_size=0, max_size=40), st.integers(min_value=1, max_value=64))
def test_partition_of_is_kafkas_default_partitioner(key: str, partitions: int) -> None:
    expected = DefaultPartitioner()(key.encode("utf-8", "surrogatepass"), list(range(partitions)), [])
    assert batches.partition_of(key, partitions) == expected


# ------------------------------------------------------------------------------------------ ingest


def test_ingest_keeps_a_threads_events_in_one_partition_in_order_and_names_rejections() -> None:
    values = [msgspec.json.encode(event(f"thread-{i % 5}", i)) for i in range(40)]
    values[7] = b"not json"
    out = ingest.validate_batch(values, partitions=4)
    assert [(position, r.reason_code) for position, r in out.rejected] == [(7, "not_json")]
    assert out.accepted == 39
    seen: dict[str, int] = {}
    for partition, events in out.valid.items():
        assert partition == batches.partition_of(events[0].thread_id, 4)
        for e in events:
            assert seen.setdefault(e.thread_id, partition) == partition
        for thread in {e.thread_id for e in events}:
            ids = [int(e.comment_id.rsplit("-", 1)[1]) for e in events if e.thread_id == thread]
            assert ids == sorted(ids)


# ------------------------------------------------------------------------------------------ enrich


class OwnedStore(dict[str, Any]):
    """A store that records which input partition wrote each key (as StagedTable does)."""

    def __init__(self) -> None:
        super().__init__()
        self.partition = -1
        self.owner: dict[str, int] = {}

    def at_partition(self, partition: int) -> None:
        self.partition = partition

    def __setitem__(self, key: str, value: Any) -> None:
        super().__setitem__(key, value)
        self.owner[key] = self.partition


@pytest.fixture(scope="module")
def scorer() -> FlagScorer:
    return FlagScorer()


def test_enrich_writes_each_threads_state_under_its_own_input_partition(scorer: FlagScorer) -> None:
    tree, fingerprints = OwnedStore(), OwnedStore()

    def at(partition: int) -> None:
        tree.at_partition(partition)
        fingerprints.at_partition(partition)

    step = EnrichStep(tree, fingerprints, scorer, 4, at_partition=at)
    a = [event("thread-a", i, parent=i - 1 if i else None) for i in range(5)]
    b = [event("thread-b", i, parent=i - 1 if i else None) for i in range(5)]
    out = step.run([(0, a), (3, b)], now_ms=0)
    assert [r.depth for r in out.rows] == [0, 1, 2, 3, 4] * 2
    # Every key of thread a belongs to partition 0, of thread b to 3 (also the routes written after
    # the whole batch was scored): a rebalance restores each thread with its partition.
    for key, partition in tree.owner.items():
        assert partition == (0 if "thread-a" in key else 3), key
    assert step.progress == {
        "valid:0": int(a[-1].posted_at.timestamp() * 1000),
        "valid:3": int(b[-1].posted_at.timestamp() * 1000),
    }
    windows = sum(len(d.routes) for ds in out.fan_out.by_partition.values() for d in ds)
    assert windows >= 3 * len(out.rows)  # thread, trend and author windows at least


def test_enrich_forgets_threads_and_texts_quiet_for_the_quiet_time(scorer: FlagScorer) -> None:
    hour = 3_600_000
    tree, fingerprints = OwnedStore(), OwnedStore()

    def at(partition: int) -> None:
        tree.at_partition(partition)
        fingerprints.at_partition(partition)

    step = EnrichStep(tree, fingerprints, scorer, 4, at_partition=at, quiet_ms=2 * hour)
    old = [event("thread-a", i, parent=i - 1 if i else None) for i in range(3)]
    out = step.run([(1, old)], now_ms=0)
    old_rows = out.rows
    assert (out.retired_state, out.retired_fingerprints) == (0, 0)
    assert any(k.startswith("fp|") for k in fingerprints)
    # Schedules live in the partition they name, like the state they retire.
    assert {tree.owner[k] for k in tree if k.startswith("q|")} == {1}
    assert {fingerprints.owner[k] for k in fingerprints if k.startswith(("fq|", "fl|"))} == {1}
    fresh = msgspec.structs.replace(event("thread-b", 0), body="an entirely different text")
    out = step.run([(1, [fresh])], now_ms=3 * hour)
    assert (out.retired_state, out.retired_fingerprints) == (3, len({r.fingerprint for r in old_rows}))
    assert not any("thread-a" in k for k in tree if not k.startswith("x|"))
    assert sorted(k for k in fingerprints if k.startswith("fp|")) == [f"fp|{out.rows[0].fingerprint}"]
    [again] = step.run([(1, [old[0]])], now_ms=3 * hour).retired  # a replay of a retired comment
    assert "thread-a" in again[1] and "without events" in again[1]


def test_enrich_with_the_event_time_rule_forgets_what_the_partition_left_behind(scorer: FlagScorer) -> None:
    """A replay faster than real time never goes quiet by the wall clock: with the event-time rule,
    threads and texts the partition's event time has left behind by the retention are forgotten."""
    hour = 3_600_000
    step = EnrichStep({}, {}, scorer, 4, retention_ms=2 * hour)
    old = [event("thread-a", i, parent=i - 1 if i else None) for i in range(3)]
    old_rows = step.run([(2, old)], now_ms=0).rows
    later = msgspec.structs.replace(event("thread-b", 0), body="much later", posted_at=START + timedelta(hours=4))
    out = step.run([(2, [later])], now_ms=0)  # the same wall-clock moment
    assert (out.retired_state, out.retired_fingerprints) == (3, len({r.fingerprint for r in old_rows}))
    assert not any(k.startswith("n|thread-a|") for k in step.tree_store)


def test_authors_count_a_redelivered_comment_once(scorer: FlagScorer) -> None:
    step = EnrichStep({}, {}, scorer, 2)
    rows = step.run([(0, [event("t", i, author="ann") for i in range(3)])], now_ms=0).rows
    store: dict[str, Any] = {}
    first = authors.count(store, rows)
    again = authors.count(store, rows)
    assert [r.author_comment_count for r in first] == [1, 2, 3]
    assert [r.author_comment_count for r in again] == [3, 3, 3]


def test_a_replayed_comment_keeps_the_duplicate_count_it_was_first_scored_with(scorer: FlagScorer) -> None:
    """The spam signal counts other authors of the same text across partitions: a copy posted earlier
    but read later (another partition) would change the count of a replayed comment, and its flags
    would then disagree with the windows counted the first time."""
    step = EnrichStep({}, {}, scorer, 2)
    body = "buy cheap watches at example dot com now"

    def copy(thread: str, author: str, hours: int) -> CommentEvent:
        return msgspec.structs.replace(
            event(thread, 0, author=author), body=body, posted_at=START + timedelta(hours=hours)
        )

    def spam_reasons(partition: int, comment: CommentEvent) -> list[str]:
        [row] = step.run([(partition, [comment])], now_ms=0).rows
        return row.flags.reasons.get("spam", [])

    first = spam_reasons(0, copy("a", "ann", 1))
    assert first == []
    assert spam_reasons(1, copy("b", "bob", 0)) == []  # posted earlier, read later
    assert spam_reasons(0, copy("a", "ann", 1)) == first  # the replay is scored as the first time
    assert spam_reasons(0, copy("c", "cid", 2)) == ["spam:duplicate_authors=2"]  # new comments see both


def test_topics_of_envelopes_buffer_a_few_batches_not_4096_messages() -> None:
    """Faust buffers up to 4,096 messages per agent stream; an envelope is up to 512 KB, so the
    topics that carry them are given a buffer of a few batches (it grows with the partitions)."""
    import json
    import subprocess
    import sys
    from pathlib import Path

    probe = (
        "import json; from streams import app; from streams.batches import envelope_buffer; "
        "names = ['raw_topic', 'valid_topic', 'authored_topic', 'enriched_topic', 'windows_input_topic', "
        "'activity_windows_topic']; "
        "print(json.dumps([envelope_buffer(8)] + [getattr(app, n).clone().maxsize for n in names]))"
    )
    env = {"PATH": "/usr/bin:/bin", "STREAMS_PARTITIONS": "8", "HOME": str(Path.home())}
    root = Path(__file__).resolve().parents[2]
    out = subprocess.run([sys.executable, "-c", probe], env=env, cwd=root, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    expected, raw, *enveloped = json.loads(out.stdout.strip().splitlines()[-1])
    assert expected == 128 and raw is None and enveloped == [expected] * 5


# ------------------------------------------------------------------------------------------ windows


def test_fan_out_and_apply_count_every_comment_in_its_thread_window(scorer: FlagScorer) -> None:
    rows = EnrichStep({}, {}, scorer, 2).run([(0, [event("t", i) for i in range(10)])], now_ms=0).rows
    fan_out = FanOut(2)
    for row in rows:
        fan_out.add(row, "valid:0", [])
    fan_out.add_progress({"valid:0": int((START + timedelta(hours=2)).timestamp() * 1000)}, set(), {}, 0)
    for partition, deliveries in fan_out.by_partition.items():
        assert all(windows_partition(kind, key, 2) == partition for d in deliveries for kind, key in d.routes), (
            "a delivery on the wrong partition"
        )
        items = [d.item.comment_id for d in deliveries if d.item is not None]
        assert len(items) == len(set(items)), "an item sent twice to one partition"
        assert isinstance(deliveries[-1], WindowDelivery) and deliveries[-1].item is None  # progress last
    engine = WindowEngine(WindowConfig(), {})
    out = EngineOutput()
    items = sum(apply(engine, p, d, 0, out) for p, d in fan_out.by_partition.items())
    assert items == sum(len(x.routes) for d in fan_out.by_partition.values() for x in d)
    for partition in fan_out.by_partition:  # idle long after: every window closes
        apply(engine, partition, [WindowDelivery(tick_ms=1)], 10**12, out)
    thread_rows = [w for w in out.windows if w.kind == "thread_1m" and w.key == "t"]
    assert sum(w.comments for w in thread_rows) == 10


def test_progress_reports_carry_the_senders_clock_and_when_each_source_was_fresh(scorer: FlagScorer) -> None:
    """A source read to its end was fresh when its event time last advanced; one with more to read
    is fresh now (its items are on their way, however old they are)."""
    step = EnrichStep({}, {}, scorer, 2)
    step.run([(0, [event("t", 0)]), (1, [event("u", 0)])], now_ms=1_000)
    step.run([(0, [event("t", 0)]), (1, [event("u", 5)])], now_ms=9_000)  # valid:0 did not advance
    assert step.advanced_at == {"valid:0": 1_000, "valid:1": 9_000}
    fan_out = FanOut(2)
    fan_out.add_progress(step.progress, {"valid:0"}, step.advanced_at, 9_500)
    reports = {(p, d.source): d for p, ds in fan_out.by_partition.items() for d in ds}
    assert len(reports) == 4  # every source to every windows partition
    for partition in (0, 1):
        done, pending = reports[(partition, "valid:0")], reports[(partition, "valid:1")]
        assert (done.caught_up, done.clock_ms, done.fresh_ms) == (True, 9_500, 1_000)
        assert (pending.caught_up, pending.clock_ms, pending.fresh_ms) == (False, 9_500, 9_500)


def test_apply_reads_single_window_deliveries_as_written_before_routes(scorer: FlagScorer) -> None:
    """Envelopes already on windows.input when a worker is upgraded hold one window per delivery."""
    rows = EnrichStep({}, {}, scorer, 1).run([(0, [event("t", i) for i in range(4)])], now_ms=0).rows
    fan_out = FanOut(1)
    for row in rows:
        fan_out.add(row, "valid:0", [])
    current = fan_out.by_partition[0]
    old_form = [
        WindowDelivery(kind=kind, key=key, item=d.item, source=d.source)
        for d in current
        if d.item is not None
        for kind, key in d.routes
    ]
    results = []
    for deliveries in (current, old_form):
        engine = WindowEngine(WindowConfig(), {})
        out = EngineOutput()
        applied = apply(engine, 0, deliveries, 0, out)
        apply(engine, 0, [WindowDelivery(tick_ms=1)], 10**12, out)
        results.append((applied, sorted((w.kind, w.key, w.comments) for w in out.windows)))
    assert results[0] == results[1]
    assert results[0][0] == len(old_form) > len(rows)


def test_envelopes_per_batch_keep_rows_per_batch_as_partitions_grow() -> None:
    """Each upstream batch writes one envelope per partition: with twice the partitions an agent
    takes twice the envelopes, so its batches hold about as many rows as with 4 partitions."""
    assert [batches.envelopes_per_batch(4, p) for p in (1, 2, 4, 5, 8, 12)] == [4, 4, 4, 8, 8, 12]
    assert batches.envelopes_per_batch(20, 16) == 80


def test_sources_ahead_of_the_slowest_partition_with_more_to_read_are_paused() -> None:
    from streams.steps.enrich import sources_ahead

    progress = {"valid:0": 10_000, "valid:1": 2_000, "valid:2": 2_500, "valid:3": 0}
    everything = set(progress)
    assert sources_ahead(progress, everything, 1_000) == {"valid:0", "valid:1", "valid:2"}
    # valid:3 is read to its end (a quiet partition): the slowest with more to read is valid:1.
    assert sources_ahead(progress, everything - {"valid:3"}, 1_000) == {"valid:0"}
    assert sources_ahead(progress, everything - {"valid:3"}, 8_000) == set()
    assert sources_ahead(progress, set(), 1_000) == set()  # all read to the end: nobody held back
    assert sources_ahead(progress, everything, 0) == set()  # off
    assert sources_ahead(progress, {"valid:9"}, 1_000) == set()  # pending but no event seen yet
