"""A burst into one thread grows state values past one Kafka record's limit (1 MiB): every comment
still lands, the windows stay exact, and a restarted worker restores those values whole.

Before streams/state_parts.py, the window bucket of this minute could not be written to its
changelog (MessageSizeTooLarge): the windows agent split its batches and dead-lettered them, and
the worker stopped answering."""

from __future__ import annotations

import msgspec
import pytest

from tests.integration.harness import Pipeline

pytestmark = [pytest.mark.kafka, pytest.mark.clickhouse]

#: Long ids make each comment's bucket entry ~150 bytes: 12,000 comments make a bucket of ~1.8 MB.
THREAD = "burst-thread-" + "x" * 30
BURST = 12_000


def event(i: int, spread: int) -> bytes:
    """Comment `i`, posted within the minute 12:00 (spread over it by `i % spread`)."""
    return msgspec.json.encode(
        {
            "event_id": f"burst-e{i}",
            "source": "test",
            "thread_id": THREAD,
            "comment_id": f"burst-comment-{i:06d}-" + "c" * 24,
            "author": f"burst-bot-{i % 50}-" + "a" * 16,
            "posted_at": f"2024-05-01T12:00:{(i % spread) * 60 // spread:02d}+00:00",
            "body": f"burst message number {i}",
        }
    )


COMMENTS = f"SELECT count() FROM comments FINAL WHERE thread_id = '{THREAD}'"
MINUTE_WINDOW = f"SELECT sum(comments) FROM activity_windows FINAL WHERE kind = 'thread_1m' AND key = '{THREAD}'"


def test_a_burst_past_the_record_limit_lands_whole_and_survives_a_restart(fresh_pipeline: Pipeline) -> None:
    p = fresh_pipeline.start()
    p.feed_raw(THREAD, (event(i, BURST) for i in range(BURST)))
    p.wait_until(COMMENTS, lambda n: n >= BURST, timeout=300)
    p.wait_until(MINUTE_WINDOW, lambda n: n is not None and n >= BURST, timeout=300)
    assert p.scalar(MINUTE_WINDOW) == BURST
    assert p.metric("streams_state_split_values_total", table="window_state") > 0  # the split path ran
    p.kill()
    p.start()
    # 100 more comments in the same (closed) minute: the correction reads the restored bucket.
    p.feed_raw(THREAD, (event(i, 100) for i in range(BURST, BURST + 100)))
    p.wait_until(MINUTE_WINDOW, lambda n: n is not None and n >= BURST + 100, timeout=300)
    assert (p.scalar(COMMENTS), p.scalar(MINUTE_WINDOW)) == (BURST + 100, BURST + 100)
    assert p.scalar("SELECT count() FROM dead_letters FINAL") == 0
    assert p.scalar("SELECT count() FROM late_events FINAL") == 0
