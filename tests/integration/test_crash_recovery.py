"""At-least-once into an idempotent schema: a crash mid-stream neither loses nor doubles a comment."""

from __future__ import annotations

import os
import signal
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import msgspec
import pytest

from streams.models import CommentEvent
from streams.sources.registry import SourceItem
from tests.integration.harness import Pipeline

pytestmark = [pytest.mark.kafka, pytest.mark.clickhouse]

N_THREADS = 20
PER_THREAD = 150


def generated_items() -> list[SourceItem]:
    start = datetime(2024, 1, 1, tzinfo=UTC)
    items = []
    for t in range(N_THREADS):
        for i in range(PER_THREAD):
            event = CommentEvent(
                event_id=f"e-{t}-{i}",
                source="crash-test",
                thread_id=f"crash-{t}",
                comment_id=f"c-{t}-{i}",
                parent_id=f"c-{t}-{i // 2}" if i else None,
                author=f"author-{(t * 7 + i) % 37}",
                posted_at=start + timedelta(seconds=t * 1000 + i),
                body=f"comment {i} in thread {t}",
            )
            items.append(SourceItem(key=event.thread_id, value=msgspec.json.encode(event)))
    return items


def test_kill_mid_stream_then_restart_lands_every_comment_once(fresh_pipeline: Pipeline) -> None:
    p = fresh_pipeline.start()
    total = N_THREADS * PER_THREAD
    p.feed_items(generated_items())
    # Crash once part of the stream is in ClickHouse but not all of it.
    p.wait_for_metric("streams_clickhouse_rows_total", lambda n: n >= total // 10, table="comments", timeout=90)
    p.kill()
    p.start()
    p.wait_until("SELECT count() FROM comments FINAL WHERE source = 'crash-test'", lambda n: n >= total, timeout=300)
    rows = p.query(
        "SELECT count(), uniqExact(comment_id), max(depth), countIf(parent_missing = 1) "
        "FROM comments FINAL WHERE source = 'crash-test'"
    )[0]
    assert rows[0] == rows[1] == total
    # The thread tree survived the crash through its changelog: depths are right, no parent is missing.
    assert rows[2] == 8  # i = 150 -> 75 -> 37 -> 18 -> 9 -> 4 -> 2 -> 1 -> 0
    assert rows[3] == 0


def test_a_worker_frozen_past_its_session_timeout_loses_nothing(fresh_pipeline: Pipeline) -> None:
    """A stopped process (a VM or GC pause, a loaded machine) is dropped from its consumer group;
    when it runs again it rejoins in a rebalance mid-backlog, twice here: every comment lands once."""
    p = fresh_pipeline.start()
    total = N_THREADS * PER_THREAD
    p.feed_items(generated_items())
    assert p.worker.proc is not None
    for share in (0.1, 0.5):
        p.wait_for_metric("streams_clickhouse_rows_total", lambda n, s=share: n >= total * s, table="comments")
        os.killpg(p.worker.proc.pid, signal.SIGSTOP)
        time.sleep(p.settings.session_timeout_seconds + 2)  # the group moves on without it
        os.killpg(p.worker.proc.pid, signal.SIGCONT)
    p.wait_until("SELECT count() FROM comments FINAL WHERE source = 'crash-test'", lambda n: n >= total, timeout=300)
    rows = p.query("SELECT count(), uniqExact(comment_id), max(depth) FROM comments FINAL WHERE source = 'crash-test'")
    assert rows[0] == (total, total, 8)


def retention_items(threads: int = 40, per_thread: int = 60) -> list[SourceItem]:
    """A thread every 2 hours of event time, over about 3 days: with 3 h of retention, enrich
    retires the early threads while the later ones are still coming."""
    start = datetime(2024, 1, 1, tzinfo=UTC)
    items = []
    for t in range(threads):
        for i in range(per_thread):
            event = CommentEvent(
                event_id=f"r-{t}-{i}",
                source="retention-crash",
                thread_id=f"retention-crash-{t}",
                comment_id=f"rc-{t}-{i}",
                parent_id=f"rc-{t}-{i - 1}" if i else None,
                author=f"writer-{(t * 5 + i) % 23}",
                posted_at=start + timedelta(hours=2 * t, seconds=30 * i),
                body=f"comment {i} in thread {t}",
            )
            items.append(SourceItem(key=event.thread_id, value=msgspec.json.encode(event)))
    return items


def assert_author_counts_exact(p: Pipeline, authors: int) -> None:
    counted = p.query(
        "SELECT author, count(), max(author_comment_count), uniqExact(thread_id), max(author_thread_count) "
        "FROM comments FINAL WHERE source = 'retention-crash' GROUP BY author ORDER BY author"
    )
    assert len(counted) == authors
    for author, comments, comment_count, thread_ids, thread_count in counted:
        assert (author, comment_count, thread_count) == (author, comments, thread_ids)


def test_ingest_s_copies_of_retired_comments_sent_again_are_not_dead_letters(broker: str, tmp_path: Path) -> None:
    """Ingest's first batch (the comments fed before the worker starts: threads spanning days) fails
    after it sent its events (STREAMS_FAULT_INJECT) and is sent again 0.1 s later. When enrich
    placed them and retired the early threads in between, the copies (new comments.valid offsets,
    the same comments.raw ones) meet retired comments: they must be skipped, not dead-lettered.
    Whether enrich took the copies in a later batch than the events is timing: up to 3 fresh runs,
    until one does."""
    items = retention_items()
    for attempt in range(3):
        p = Pipeline(
            tmp_path / str(attempt),
            broker,
            STREAMS_STATE_RETENTION_SECONDS=str(3 * 3600),
            STREAMS_FAULT_INJECT="ingest:1",
        )
        p.feed_items(items)
        p.start()
        try:
            p.wait_until(
                "SELECT count() FROM comments FINAL WHERE source = 'retention-crash'",
                lambda n: n >= len(items),
                timeout=180,
            )
            p.wait_for_metric("streams_consumer_lag", lambda n: n == 0, timeout=120)
            assert p.metric("streams_agent_crashes_total", agent="ingest") == 1
            assert_author_counts_exact(p, 23)
            assert p.scalar("SELECT count() FROM dead_letters FINAL") == 0
            if p.metric("streams_replayed_retired_total", agent="enrich") > 0:
                return  # copies met retired comments, and none was dead-lettered
        finally:
            p.stop()
    pytest.fail("in 3 runs enrich never read ingest's copies after retiring their comments")


def test_a_kill_with_the_retention_on_leaves_every_author_count_exact(broker: str, tmp_path: Path) -> None:
    """With STREAMS_STATE_RETENTION_SECONDS on, enrich retires threads the stream moved past and the
    author counts drop those comments' keys, then the authors' keys for the threads (once the commit
    passed the notice). Killed mid-stream and restarted, every author's count still equals their
    comments: a replay after the kill neither counts a retired comment again nor loses one, nor
    dead-letters the copies it read again."""
    items = retention_items()
    total = len(items)
    p = Pipeline(tmp_path, broker, STREAMS_STATE_RETENTION_SECONDS=str(3 * 3600)).start()
    try:
        p.feed_items(items)
        p.wait_for_metric("streams_state_retired_total", lambda n: n >= 100, table="author_stats", timeout=120)
        p.kill()
        p.start()
        p.wait_until(
            "SELECT count() FROM comments FINAL WHERE source = 'retention-crash'", lambda n: n >= total, timeout=300
        )
        assert_author_counts_exact(p, 23)
        # The replay after the kill met comments the persisted tree had retired: those enrich read
        # again, and those ingest sent again (new comments.valid offsets, their comments.raw place
        # carried along) are skipped as processed before. Before, hundreds per run were dead-lettered.
        # Once every topic is read and committed to its end, the replay is over.
        p.wait_for_metric("streams_consumer_lag", lambda n: n == 0, timeout=120)
        assert p.scalar("SELECT count() FROM dead_letters FINAL") == 0
        # A source sending a retired comment again (a new comments.raw message) is still refused, and
        # said so: the skip above is for copies only.
        p.feed_items(items[:1])
        p.wait_until("SELECT count() FROM dead_letters FINAL", lambda n: n >= 1, timeout=120)
        letters = p.query("SELECT reason_code, JSONExtractString(raw, 'comment_id') FROM dead_letters FINAL")
        assert letters == [("retired", "rc-0-0")]
    finally:
        p.stop()
