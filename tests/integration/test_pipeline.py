"""The walking skeleton on real infrastructure: Kafka broker -> Faust worker -> embedded ClickHouse."""

from __future__ import annotations

import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import msgspec
import pytest

from streams.cli import SAMPLES_DIR
from streams.sources.registry import parse_source
from tests.integration.harness import Pipeline

pytestmark = [pytest.mark.kafka, pytest.mark.clickhouse]

SEED = SAMPLES_DIR / "000_0506d22904cf1e0a.txt"

# (author, parent_author, posted_at UTC, depth) as a reader of the dump sees them.
EXPECTED = {
    ("IH8OBAMA", "Dindu Nuffins", datetime(2018, 3, 20, 13, 30, tzinfo=UTC), 1),
    ("Dabooda", "IH8OBAMA", datetime(2018, 3, 20, 14, 10, tzinfo=UTC), 2),
    ("are we there yet", "Dabooda", datetime(2018, 3, 20, 16, 24, tzinfo=UTC), 3),
    ("FireBrander", "FireBrander", datetime(2018, 3, 20, 12, 41, tzinfo=UTC), 2),
    ("Adolph.H.", "Dindu Nuffins", datetime(2018, 3, 20, 11, 54, tzinfo=UTC), 1),
    ("slopz38", "Jim in MN", datetime(2018, 3, 20, 12, 6, tzinfo=UTC), 1),
    ("ZeroSpam", "kralizec", datetime(2018, 3, 21, 2, 50, tzinfo=UTC), 1),
    ("FireBrander", "ExPat2018", datetime(2018, 3, 20, 12, 31, tzinfo=UTC), 1),
    ("HRClinton", "Belrev", datetime(2018, 3, 20, 12, 9, tzinfo=UTC), 1),
}


def seed_thread_id() -> str:
    dump = parse_source(SEED).dump
    assert dump is not None
    return dump.thread_id


def feed_seed(pipeline: Pipeline) -> None:
    stats = pipeline.feed_items(parse_source(SEED))
    assert stats.sent == 9


def test_seed_lands_with_thread_positions(pipeline: Pipeline) -> None:
    feed_seed(pipeline)
    thread = seed_thread_id()
    count_sql = f"SELECT count() FROM comments FINAL WHERE thread_id = '{thread}'"
    pipeline.wait_until(count_sql, lambda n: n >= 9)
    # Parent fixes arrive as new versions; let the sink catch up before reading positions.
    rows = pipeline.query(
        "SELECT author, parent_author, posted_at, depth, body, parent_id, comment_id, root_id, body_length "
        f"FROM comments FINAL WHERE thread_id = '{thread}'"
    )
    assert len(rows) == 9
    got = {(r[0], r[1], _utc(r[2]), r[3]) for r in rows}
    assert got == EXPECTED
    by_author_time = {(r[0], _utc(r[2]).hour, _utc(r[2]).minute): r for r in rows}
    # The self-reply's parent is the same author's earlier comment; replies to absent authors have none.
    assert by_author_time[("FireBrander", 12, 41)][5] == by_author_time[("FireBrander", 12, 31)][6]
    assert by_author_time[("Dabooda", 14, 10)][5] == by_author_time[("IH8OBAMA", 13, 30)][6]
    assert by_author_time[("IH8OBAMA", 13, 30)][5] is None
    # Bodies: two empty ones, the rest verbatim with paragraphs.
    assert by_author_time[("slopz38", 12, 6)][4] == ""
    assert by_author_time[("ZeroSpam", 2, 50)][4] == ""
    assert by_author_time[("FireBrander", 12, 31)][4].startswith("Youtube...Wolf Blitzer on Jeopardy")
    assert "what an absolute moron" in by_author_time[("FireBrander", 12, 31)][4]
    assert "\n\n" in by_author_time[("IH8OBAMA", 13, 30)][4]
    assert all(r[8] == len(r[4]) for r in rows)
    # Replies chain to one root: "are we there yet" -> Dabooda -> IH8OBAMA -> (absent) Dindu Nuffins.
    assert by_author_time[("are we there yet", 16, 24)][7] == by_author_time[("IH8OBAMA", 13, 30)][7]


def test_feeding_twice_keeps_nine_comments(pipeline: Pipeline) -> None:
    thread = seed_thread_id()
    rows_before = pipeline.metric("streams_clickhouse_rows_total", table="comments")
    feed_seed(pipeline)
    feed_seed(pipeline)
    # Wait until both replays went through the sink (every consumed row is inserted again).
    pipeline.wait_for_metric("streams_clickhouse_rows_total", lambda n: n >= rows_before + 18, table="comments")
    assert pipeline.scalar(f"SELECT count() FROM comments FINAL WHERE thread_id = '{thread}'") == 9
    assert pipeline.scalar(f"SELECT uniqExact(comment_id) FROM comments WHERE thread_id = '{thread}'") == 9


def test_malformed_messages_are_dead_lettered_and_the_worker_keeps_going(pipeline: Pipeline) -> None:
    good = {
        "event_id": "e-dlq-good",
        "source": "test",
        "thread_id": "dlq-thread",
        "comment_id": "c-dlq-good",
        "author": "after the garbage",
        "posted_at": "2024-05-01T10:00:00+02:00",
        "body": "still here",
    }
    naive = {**good, "event_id": "e-naive", "comment_id": "c-naive", "posted_at": "2024-05-01T10:00:00"}
    stats = pipeline.feed_raw(
        "dlq-thread",
        [b"\xff\xfe not json", msgspec.json.encode(naive), b"", msgspec.json.encode(good)],
    )
    assert stats.sent == 4
    pipeline.wait_until("SELECT count() FROM comments FINAL WHERE thread_id = 'dlq-thread'", lambda n: n == 1)
    pipeline.wait_until(
        "SELECT count() FROM dead_letters FINAL WHERE source_topic LIKE '%comments.raw'", lambda n: n >= 3
    )
    letters = pipeline.query(
        "SELECT reason_code, reason, toValidUTF8(raw), hex(raw) FROM dead_letters FINAL "
        "WHERE source_topic LIKE '%comments.raw' ORDER BY source_offset"
    )
    codes = [r[0] for r in letters]
    assert sorted(codes) == ["empty", "not_json", "schema"]
    schema_reason = next(r[1] for r in letters if r[0] == "schema")
    assert "timezone" in schema_reason and "posted_at" in schema_reason
    # The original bytes are kept exactly, invalid UTF-8 included.
    assert any(r[3].startswith("FFFE") and "not json" in r[2] for r in letters)
    row = pipeline.query("SELECT author, posted_at FROM comments FINAL WHERE thread_id = 'dlq-thread'")[0]
    assert row[0] == "after the garbage"
    assert _utc(row[1]) == datetime(2024, 5, 1, 8, 0, tzinfo=UTC)


def test_retired_thread_state_refuses_a_replay_rather_than_count_it_twice(broker: str, tmp_path: Path) -> None:
    """A worker with STREAMS_STATE_RETENTION_SECONDS (here 3 days) retires comments their thread has
    moved past by that much; a replay of one then goes to the dead letters with reason "retired",
    and the comment stays counted once, in its author's counts too (which let go of it as well)."""
    pipeline = Pipeline(tmp_path, broker, STREAMS_STATE_RETENTION_SECONDS="259200").start()
    try:
        _retention_replay(pipeline)
    finally:
        pipeline.stop()


def _retention_replay(pipeline: Pipeline) -> None:
    first = {
        "event_id": "e-ret-1",
        "source": "test",
        "thread_id": "retention-thread",
        "comment_id": "c-ret-1",
        "author": "early bird",
        "posted_at": "2024-05-01T10:00:00+00:00",
        "body": "first",
    }
    later = {**first, "event_id": "e-ret-2", "comment_id": "c-ret-2", "posted_at": "2024-05-06T10:00:00+00:00"}
    reply = {**later, "event_id": "e-ret-3", "comment_id": "c-ret-3", "parent_id": "c-ret-2"}
    assert pipeline.feed_raw("retention-thread", [msgspec.json.encode(first), msgspec.json.encode(later)]).sent == 2
    count_sql = "SELECT count() FROM comments FINAL WHERE thread_id = 'retention-thread'"
    pipeline.wait_until(count_sql, lambda n: n == 2)
    pipeline.wait_for_metric("streams_state_retired_total", lambda n: n >= 1, table="thread_state")
    assert pipeline.feed_raw("retention-thread", [msgspec.json.encode(first), msgspec.json.encode(reply)]).sent == 2
    pipeline.wait_until(count_sql, lambda n: n == 3)
    pipeline.wait_until("SELECT count() FROM dead_letters FINAL WHERE reason_code = 'retired'", lambda n: n == 1)
    [(reason, raw, topic)] = pipeline.query(
        "SELECT reason, raw, source_topic FROM dead_letters FINAL WHERE reason_code = 'retired'"
    )
    assert "c-ret-1" in reason and "retention" in reason and topic.endswith("comments.valid")
    assert msgspec.json.decode(raw)["comment_id"] == "c-ret-1"
    depth = pipeline.scalar("SELECT depth FROM comments FINAL WHERE comment_id = 'c-ret-3'")
    assert depth == 1  # its parent is still held: a reply placed as usual
    pipeline.wait_for_metric("streams_state_retired_total", lambda n: n >= 1, table="author_stats")
    # What each table holds: the thread's two remaining comments and its horizon, at least.
    assert pipeline.wait_for_metric("streams_state_entries", lambda n: n >= 3, table="thread_state")
    counts = pipeline.query(
        "SELECT author_comment_count, author_thread_count FROM comments FINAL WHERE comment_id = 'c-ret-3'"
    )
    assert counts == [(3, 1)]


@pytest.mark.parametrize("restart", [False, True], ids=["running", "killed-before-the-expiry"])
def test_an_author_s_thread_key_goes_once_their_comments_there_retired_and_a_replay_stays_counted_once(
    broker: str, tmp_path: Path, restart: bool
) -> None:
    """With the retention on, an author whose every comment in a thread was retired loses their key
    for the thread too, once the authors' committed offset has passed the notice (the counts' state
    does not grow with every author-thread pair ever seen), also when the worker was killed after
    the commit and before the expiry (the restarted one finds the sealed key in its restored table);
    a replay of the retired comment then still counts once (enrich refuses it), and only a new
    comment counts the thread again."""
    pipeline = Pipeline(tmp_path, broker, STREAMS_STATE_RETENTION_SECONDS="259200").start()
    try:
        base = {"source": "test", "thread_id": "keys-thread", "body": "hello"}
        early = {
            **base,
            "event_id": "e-k-1",
            "comment_id": "c-k-1",
            "author": "passer-by",
            "posted_at": "2024-05-01T10:00:00+00:00",
        }
        later = {
            **base,
            "event_id": "e-k-2",
            "comment_id": "c-k-2",
            "author": "regular",
            "posted_at": "2024-05-06T10:00:00+00:00",
        }
        assert pipeline.feed_raw("keys-thread", [msgspec.json.encode(early), msgspec.json.encode(later)]).sent == 2
        pipeline.wait_for_metric("streams_state_retired_total", lambda n: n >= 1, table="author_stats")
        dropped_before = 1.0  # c-k-1's member key, by this process
        if restart:
            # No input since the notice, so no authors batch could expire the key; the commit (every
            # second) passes the notice, and the restarted worker does not read it again.
            time.sleep(2.5)
            pipeline.kill()
            pipeline.start()
            dropped_before = 0.0
        expired = 0.0
        for minute in range(1, 16):  # later batches of the authors agent find the commit past the notice
            poke = {**later, "event_id": f"e-k-poke-{minute}", "comment_id": f"c-k-poke-{minute}"}
            poke["posted_at"] = f"2024-05-06T10:{minute:02d}:00+00:00"
            pipeline.feed_raw("keys-thread", [msgspec.json.encode(poke)])
            try:
                expired = pipeline.wait_for_metric(
                    "streams_state_retired_total", lambda n: n > dropped_before, timeout=3.0, table="author_stats"
                )
                break
            except AssertionError:
                continue
        assert expired == dropped_before + 1  # then passer-by's key for the thread
        assert pipeline.feed_raw("keys-thread", [msgspec.json.encode(early)]).sent == 1  # a replay
        pipeline.wait_until("SELECT count() FROM dead_letters FINAL WHERE reason_code = 'retired'", lambda n: n == 1)
        back = {**early, "event_id": "e-k-3", "comment_id": "c-k-3", "posted_at": "2024-05-07T10:00:00+00:00"}
        assert pipeline.feed_raw("keys-thread", [msgspec.json.encode(back)]).sent == 1
        pipeline.wait_until("SELECT count() FROM comments FINAL WHERE comment_id = 'c-k-3'", lambda n: n == 1)
        counts = pipeline.query(
            "SELECT author_comment_count, author_thread_count FROM comments FINAL WHERE comment_id = 'c-k-3'"
        )
        assert counts == [(2, 2)]  # c-k-1 counted once; the thread again (the documented price)
    finally:
        pipeline.stop()


def _utc(value: object) -> datetime:
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    assert isinstance(value, datetime)
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def test_a_worker_with_an_invalid_moderation_file_refuses_to_start(pipeline: Pipeline, tmp_path: Path) -> None:
    bad = tmp_path / "moderation.toml"
    bad.write_text("[thresholds]\ntoxicity = 2\n", encoding="utf-8")
    env = {
        **pipeline.env,
        "STREAMS_MODERATION_FILE": str(bad),
        # Its own ClickHouse directory: the running worker owns the shared one.
        "STREAMS_CLICKHOUSE_DSN": f"chdb://{tmp_path / 'clickhouse'}",
    }
    done = subprocess.run(
        [sys.executable, "-m", "streams.cli", "worker"], env=env, capture_output=True, timeout=120, check=False
    )
    stderr = done.stderr.decode()
    assert done.returncode != 0
    assert f"{bad}: lexicon: missing required key" in stderr
    assert "Traceback" not in stderr, stderr  # a message for the operator, not a crash
