"""At-least-once into an idempotent schema: a crash mid-stream neither loses nor doubles a comment."""

from __future__ import annotations

import os
import signal
import time
from datetime import UTC, datetime, timedelta

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
