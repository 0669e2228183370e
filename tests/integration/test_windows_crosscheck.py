"""Event-time windows on the real pipeline: every emitted window equals ClickHouse's own aggregate
over the raw comments, for a replayed 2018 thread and for a generated day of comments replayed out
of order (within the allowed lateness), with edits and deletions, optionally with the worker killed
and restarted in the middle.

The archive has STREAMS_TEST_ARCHIVE_COMMENTS comments (default 50,000, the size the windows issue
asks for: 37-47 s per test here, the whole pipeline in one Python process; `make test-archive-50k`
runs only these tests).
"""

from __future__ import annotations

import os
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import NamedTuple

import msgspec
import pytest

from streams.cli import SAMPLES_DIR
from streams.models import CommentEvent
from streams.sources.registry import SourceItem, parse_source
from streams.windows.archive import generate_archive
from tests.integration.harness import Pipeline

pytestmark = [pytest.mark.kafka, pytest.mark.clickhouse]

# What ClickHouse says each window should hold, computed from comments FINAL alone.
EXPECTED_SQL = {
    "thread_1m": """
        SELECT thread_id AS key, toStartOfMinute(posted_at) AS start, count() AS comments,
               uniqExact(author) AS authors, countIf(notEmpty(flags)) AS flagged, max(depth) AS depth
        FROM comments FINAL WHERE {where} GROUP BY key, start""",
    "author_1m": """
        SELECT author AS key, toStartOfMinute(posted_at) AS start, count() AS comments,
               uniqExact(author) AS authors, countIf(notEmpty(flags)) AS flagged, max(depth) AS depth
        FROM comments FINAL WHERE {where} GROUP BY key, start""",
    "category_1m": """
        SELECT arrayJoin(arrayDistinct(flags)) AS key, toStartOfMinute(posted_at) AS start, count() AS comments,
               uniqExact(author) AS authors, count() AS flagged, max(depth) AS depth
        FROM comments FINAL WHERE {where} GROUP BY key, start""",
    "thread_trend_10m": """
        SELECT thread_id AS key, toStartOfMinute(posted_at) - toIntervalMinute(arrayJoin(range(10))) AS start,
               count() AS comments, uniqExact(author) AS authors, countIf(notEmpty(flags)) AS flagged,
               max(depth) AS depth
        FROM comments FINAL WHERE {where} GROUP BY key, start""",
}
# A window whose comments were all deleted keeps a zero-count row (its latest version): not a window.
EMITTED_SQL = """
    SELECT key, window_start AS start, comments, distinct_authors, flagged_comments, max_depth
    FROM activity_windows FINAL WHERE kind = '{kind}' AND key IN ({keys}) AND comments > 0"""


def windows_match(p: Pipeline, where: str, keys_sql: dict[str, str]) -> dict[str, tuple[int, int]]:
    """Per kind: (windows ClickHouse expects, windows that differ or are missing/extra)."""
    report = {}
    for kind, sql in EXPECTED_SQL.items():
        expected = {(r[0], _ms(r[1])): tuple(r[2:]) for r in p.query(sql.format(where=where))}
        emitted = {(r[0], _ms(r[1])): tuple(r[2:]) for r in p.query(EMITTED_SQL.format(kind=kind, keys=keys_sql[kind]))}
        differing = {k for k in expected.keys() | emitted.keys() if expected.get(k) != emitted.get(k)}
        report[kind] = (len(expected), len(differing))
    return report


def wait_for_windows(p: Pipeline, where: str, keys_sql: dict[str, str], timeout: float = 120.0) -> dict:
    deadline = time.monotonic() + timeout
    report: dict[str, tuple[int, int]] = {}
    while time.monotonic() < deadline:
        report = windows_match(p, where, keys_sql)
        if all(bad == 0 for _, bad in report.values()):
            return report
        time.sleep(2)
    raise AssertionError(f"windows differ from ClickHouse (kind: (expected, differing)): {report}")


def test_replayed_2018_thread_windows_equal_clickhouse(pipeline: Pipeline) -> None:
    source = parse_source(SAMPLES_DIR / "000_0506d22904cf1e0a.txt")
    thread = source.dump.thread_id  # type: ignore[union-attr]
    pipeline.feed_items(source)
    where = f"thread_id = '{thread}'"
    pipeline.wait_until(f"SELECT count() FROM comments FINAL WHERE {where}", lambda n: n == 9)
    authors = f"SELECT DISTINCT author FROM comments FINAL WHERE {where}"
    keys = {
        "thread_1m": f"'{thread}'",
        "thread_trend_10m": f"'{thread}'",
        "author_1m": authors,
        # Category windows span threads; this pipeline saw no other thread.
        "category_1m": f"SELECT DISTINCT arrayJoin(flags) FROM comments FINAL WHERE {where}",
    }
    report = wait_for_windows(pipeline, where, keys)
    assert report["thread_1m"][0] == 9  # 9 comments, each in its own minute (2018 timestamps)
    assert report["category_1m"][0] >= 3  # identity_attack, toxicity, profanity at least
    assert report["thread_trend_10m"][0] >= 8 * 10 - 20
    # A comment far older than the retention horizon is counted as late, not folded in or lost.
    late = CommentEvent(
        event_id="e-late",
        source="test",
        thread_id=thread,
        comment_id="c-late",
        author="latecomer",
        posted_at=datetime(2018, 3, 19, 9, 0, tzinfo=UTC),
        body="a very late reply",
    )
    pipeline.feed_items([SourceItem(key=thread, value=msgspec.json.encode(late))])
    pipeline.wait_until("SELECT count() FROM late_events FINAL WHERE comment_id = 'c-late'", lambda n: n >= 3)
    kinds = {r[0] for r in pipeline.query("SELECT window_kind FROM late_events FINAL WHERE comment_id = 'c-late'")}
    assert {"thread_1m", "author_1m", "thread_trend_10m"} <= kinds
    assert pipeline.metric("streams_late_events_total") >= 3
    windows_2018_03_19 = pipeline.scalar(
        "SELECT count() FROM activity_windows FINAL WHERE toDate(window_start) = '2018-03-19'"
    )
    assert windows_2018_03_19 == 0


BODIES = [
    "Interesting point about the council budget, thanks for the link.",
    "I disagree, the numbers in the article look wrong to me.",
    "What an absolute moron, this is the dumbest take I have read all week.",
    "This is total shit and you know it.",
    "Does anyone have the original source for this claim?",
]


class Archive(NamedTuple):
    items: list[SourceItem]
    comments: int  # distinct comments that remain (deleted ones excluded)
    edited: int
    deleted: int


#: Every EDIT_EVERY-th comment is edited (its text and so its flags change) and every
#: DELETE_EVERY-th deleted, a few dozen messages after it was posted (inside the retention horizon).
EDIT_EVERY, DELETE_EVERY, CHANGE_AFTER = 97, 89, 40


def archive_items(n: int) -> Archive:
    items = generate_archive(
        n,
        seed=7,
        start=datetime(2019, 6, 1, tzinfo=UTC),
        duration=timedelta(days=1),
        threads=120,
        authors=900,
        shuffle_within=timedelta(minutes=4),  # inside the default 5-minute allowed lateness
    )
    out: list[SourceItem] = []
    changes: dict[int, list[SourceItem]] = {}
    edited = deleted = 0
    for i, it in enumerate(items):
        body = (
            f"{it.fingerprint} copy-paste wave"
            if it.fingerprint.startswith("pasta")
            else (f"{BODIES[i % len(BODIES)]} (#{i})" if not it.flags else BODIES[2 + i % 2])
        )
        event = CommentEvent(
            event_id=f"e-{it.comment_id}",
            source="archive",
            thread_id=f"arch-{it.thread_id}",
            comment_id=it.comment_id,
            parent_author=it.parent_author,
            author=it.author,
            posted_at=datetime.fromtimestamp(it.posted_at_ms / 1000, UTC),
            body=body,
        )
        out.append(SourceItem(key=event.thread_id, value=msgspec.json.encode(event)))
        out.extend(changes.pop(i, []))
        if it.fingerprint.startswith("pasta"):
            continue  # keep the crafted spam wave intact
        change: CommentEvent | None = None
        if i % DELETE_EVERY == DELETE_EVERY // 2:
            change = msgspec.structs.replace(event, event_type="comment.deleted", body="")
            deleted += 1
        elif i % EDIT_EVERY == EDIT_EVERY // 2:
            # A clean comment turns insulting and an insulting one clean: categories change.
            new_body = BODIES[2] if not it.flags else BODIES[0]
            change = msgspec.structs.replace(event, event_type="comment.edited", body=new_body)
            edited += 1
        if change is not None:
            event_id, edited_at = f"{event.event_id}-{change.event_type}", event.posted_at + timedelta(minutes=2)
            change = msgspec.structs.replace(change, event_id=event_id, edited_at=edited_at)
            later = SourceItem(key=change.thread_id, value=msgspec.json.encode(change))
            changes.setdefault(i + CHANGE_AFTER, []).append(later)
    for pending in changes.values():
        out.extend(pending)
    return Archive(out, n - deleted, edited, deleted)


ARCHIVE_COMMENTS = int(os.environ.get("STREAMS_TEST_ARCHIVE_COMMENTS", "50000"))


def test_archive_day_windows_equal_clickhouse(fresh_pipeline: Pipeline) -> None:
    check_archive_windows(fresh_pipeline, crash=False)


def test_archive_day_windows_survive_a_worker_kill(fresh_pipeline: Pipeline) -> None:
    """The worker is killed (SIGKILL) once 30% of the archive is in ClickHouse and started again:
    windows resume from the changelog, nothing is lost or counted twice."""
    check_archive_windows(fresh_pipeline, crash=True)


def test_archive_day_windows_stay_exact_while_enrich_pauses_partitions_ahead(broker: str, tmp_path: Path) -> None:
    """With one minute of event-time skew allowed between comments.valid partitions, enrich keeps
    pausing whichever ran ahead of the slowest (a backlog is read unevenly); nothing stalls and the
    windows still equal ClickHouse."""
    pipeline = Pipeline(tmp_path, broker, STREAMS_MAX_SOURCE_SKEW_SECONDS="60")
    try:
        # Within 60 s of the comments: a partition still reported unread at the end (as paused ones
        # once were) holds the windows for the sources' idle timeout, 120 s here.
        check_archive_windows(pipeline, crash=False, windows_timeout=60)
        assert pipeline.metric("streams_source_pauses_total", agent="enrich") >= 1
    finally:
        pipeline.stop()


def check_archive_windows(pipeline: Pipeline, *, crash: bool, windows_timeout: float = 300) -> None:
    n = ARCHIVE_COMMENTS
    p = pipeline.start()
    archive = archive_items(n)
    p.feed_items(archive.items)
    if crash:
        p.wait_for_metric("streams_clickhouse_rows_total", lambda v: v >= n * 0.3, table="comments", timeout=600)
        p.kill()  # mid-replay: windows resume from the changelog
        p.start()
        # The restarted worker loads its state in bulk (streams/state_restore.py), not through Faust;
        # it answers queries before its first rebalance ends, so the count is waited for.
        p.wait_for_metric("streams_state_restored_records_total", lambda v: v > 0, table="window_state", timeout=120)
    where = "source = 'archive'"
    # Deleted comments leave comments FINAL; edits replace their comment (a higher version).
    p.wait_until(f"SELECT count() FROM comments FINAL WHERE {where}", lambda v: v == archive.comments, timeout=900)
    p.wait_until(
        f"SELECT countIf(edited_at IS NOT NULL) FROM comments FINAL WHERE {where}",
        lambda v: v == archive.edited,
        timeout=300,
    )
    threads = f"SELECT DISTINCT thread_id FROM comments FINAL WHERE {where}"
    keys = {
        "thread_1m": threads,
        "thread_trend_10m": threads,
        "author_1m": f"SELECT DISTINCT author FROM comments FINAL WHERE {where}",
        "category_1m": f"SELECT DISTINCT arrayJoin(flags) FROM comments FINAL WHERE {where}",
    }
    report = wait_for_windows(p, where, keys, timeout=windows_timeout)
    assert report["thread_1m"][0] > n // 5 and report["author_1m"][0] > n // 5
    assert report["category_1m"][0] > 10
    # Nothing was late (the shuffle stays inside the allowed lateness). With the kill, enrich replays
    # its last uncommitted batch (500 comments: hours of this archive's event time), and a replayed
    # comment whose window state was already pruned is reported late although it was counted: the
    # windows above equal ClickHouse, which is what proves that none was dropped.
    if not crash:
        assert p.scalar(f"SELECT count() FROM late_events FINAL WHERE thread_id IN ({threads})") == 0
    # Any window version emitted twice (a replay after the crash) carries the same values both times.
    conflicting = p.scalar(
        "SELECT count() FROM (SELECT kind, key, window_start, version, "
        "uniqExact(comments, distinct_authors, flagged_comments, max_depth, mean_toxicity) AS variants "
        "FROM activity_windows GROUP BY kind, key, window_start, version HAVING variants > 1)"
    )
    assert conflicting == 0
    # The crafted incidents in the archive set the detectors off.
    detectors = {r[0] for r in p.query("SELECT DISTINCT detector FROM alerts FINAL")}
    assert {"author_flood", "spam_wave"} <= detectors


def _ms(value: object) -> int:
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    assert isinstance(value, datetime)
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return int(value.timestamp() * 1000)
