"""Every agent crashes mid-batch once (after sending its outputs, before persisting its state) and
every comment still lands once, with its thread depth, author counts and windows right."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import msgspec
import pytest

from streams.models import CommentEvent
from streams.sources.registry import SourceItem
from tests.integration.harness import Pipeline

pytestmark = [pytest.mark.kafka, pytest.mark.clickhouse]

AGENTS = ("ingest", "enrich", "authors", "windows", "sink_comments", "sink_activity_windows")
N_THREADS = 12
PER_THREAD = 100


def generated_events() -> list[CommentEvent]:
    start = datetime(2024, 3, 1, tzinfo=UTC)
    return [
        CommentEvent(
            event_id=f"e-{t}-{i}",
            source="agent-crash-test",
            thread_id=f"agent-crash-{t}",
            comment_id=f"c-{t}-{i}",
            parent_id=f"c-{t}-{i // 2}" if i else None,
            author=f"author-{(t * 5 + i) % 23}",
            posted_at=start + timedelta(seconds=t * 7 + i * 3),
            body=f"comment {i} in thread {t}",
        )
        for t in range(N_THREADS)
        for i in range(PER_THREAD)
    ]


@pytest.fixture
def crashing_pipeline(broker: str, tmp_path: Path) -> Iterator[Pipeline]:
    # The second batch of each agent fails (the windows' rows may all come in one batch: its first).
    plan = ",".join(f"{agent}:{1 if agent == 'sink_activity_windows' else 2}" for agent in AGENTS)
    p = Pipeline(tmp_path, broker, STREAMS_FAULT_INJECT=plan, STREAMS_SINK_BATCH_SECONDS="0.2")
    try:
        yield p.start()
    finally:
        p.stop()


def test_each_agent_crashing_mid_batch_loses_and_doubles_nothing(crashing_pipeline: Pipeline) -> None:
    p = crashing_pipeline
    events = generated_events()
    total = len(events)
    # Fed in four parts so that each agent has several batches (the second one fails).
    for part in range(4):
        chunk = events[part::4]
        p.feed_items(SourceItem(key=e.thread_id, value=msgspec.json.encode(e)) for e in chunk)
    p.wait_until(
        "SELECT count() FROM comments FINAL WHERE source = 'agent-crash-test'", lambda n: n >= total, timeout=180
    )
    rows = p.query(
        "SELECT count(), uniqExact(comment_id), max(depth), countIf(parent_missing = 1) "
        "FROM comments FINAL WHERE source = 'agent-crash-test'"
    )[0]
    assert rows[0] == rows[1] == total
    assert rows[2] == 7  # i = 99 -> 49 -> 24 -> 12 -> 6 -> 3 -> 1 -> 0
    assert rows[3] == 0
    # Author counts: a replayed batch counted nobody twice.
    expected = Counter(e.author for e in events)
    counted = dict(
        p.query(
            "SELECT author, max(author_comment_count) FROM comments FINAL "
            "WHERE source = 'agent-crash-test' GROUP BY author"
        )
    )
    assert counted == dict(expected)
    # Thread windows hold every comment once (the windows close when the input goes idle).
    p.wait_until(
        "SELECT sum(comments) FROM activity_windows FINAL WHERE kind = 'thread_1m' AND key LIKE 'agent-crash-%'",
        lambda n: n == total,
        timeout=120,
    )
    for agent in AGENTS:
        assert p.metric("streams_agent_crashes_total", agent=agent) == 1, agent
    # An injected fault is retried, not dead-lettered; and the worker is still up.
    assert p.scalar("SELECT count() FROM dead_letters WHERE reason_code = 'internal'") == 0
    assert p.worker.running()


@pytest.mark.parametrize("dropped", [1, 4])
def test_a_fetched_batch_dropped_undelivered_is_read_again(broker: str, tmp_path: Path, dropped: int) -> None:
    """The consumer drops a fetched batch of agents' input records without delivering it (as Faust
    does with a batch it breaks off in a rebalance; the fetch position has moved past it): the gap
    check reads the records again, and every comment lands once. Batch 1 is the first fetch from the
    log start (nothing committed yet); batch 4 one after commits."""
    p = Pipeline(tmp_path, broker, STREAMS_FAULT_INJECT=f"fetch:{dropped}")
    try:
        p.start()
        events = generated_events()
        for part in range(4):  # several fetches, so that one after the dropped batch reveals the gap
            chunk = events[part::4]
            p.feed_items(SourceItem(key=e.thread_id, value=msgspec.json.encode(e)) for e in chunk)
            time.sleep(0.5)
        p.wait_until(
            "SELECT count() FROM comments FINAL WHERE source = 'agent-crash-test'",
            lambda n: n == len(events),
            timeout=120,
        )
        assert p.metric("streams_consumer_records_reread_total") >= 1
        assert p.scalar("SELECT count() FROM dead_letters") == 0
    finally:
        p.stop()
