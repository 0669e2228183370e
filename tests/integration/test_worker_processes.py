"""`streams worker --processes 2` on 6 partitions: two processing processes and the sink that owns the
embedded database, under one supervisor. One processing child is killed (SIGKILL) in the middle of the
feed; the supervisor restarts it, and the results are exact: every comment once in `comments FINAL`,
every window equal to ClickHouse's own aggregate over the comments (as in the windows cross-check)."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path
from typing import Any

import orjson
import pytest

from tests.integration.harness import Pipeline
from tests.integration.test_windows_crosscheck import archive_items, wait_for_windows

pytestmark = [pytest.mark.kafka, pytest.mark.clickhouse]

COMMENTS = 2000


def health(p: Pipeline, port: int) -> dict[str, Any] | None:
    try:
        response = p.client.http.request("GET", f"http://127.0.0.1:{port}/health", timeout=2.0)
    except Exception:
        return None
    return orjson.loads(response.data) if response.status == 200 else None


def wait_health(p: Pipeline, port: int, predicate: Any, *, timeout: float = 120.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert p.worker.running(), f"the supervisor exited:\n{p.worker.tail(60)}"
        answer = health(p, port)
        if answer is not None and predicate(answer):
            return answer
        time.sleep(0.5)
    raise AssertionError(f"port {port} never answered as expected; last {health(p, port)}\n{p.worker.tail(60)}")


def test_two_processes_survive_a_killed_child_with_exact_results(broker: str, tmp_path: Path) -> None:
    # Idle longer than a failover (6 s session timeout + restart): else, with the windows caught up
    # when the child dies, the stall upstream of it looks like the end of the input, the watermark
    # jumps (idle flush) and the comments still to come from its partitions are late (seen: 10%).
    p = Pipeline(
        tmp_path,
        broker,
        worker_args=("--processes", "2"),
        web_ports=3,
        STREAMS_PARTITIONS="6",
        STREAMS_WINDOW_IDLE_SECONDS="20",
    )
    try:
        p.start()  # the sink answers /sql on the base port
        base = p.settings.web_port
        assert health(p, base)["role"] == "sink"  # type: ignore[index]
        # Both processing children hold part of the valid topic (the group has formed) before the feed.
        valid = p.settings.topic("comments.valid")
        children = [
            wait_health(
                p, base + i, lambda h: h["role"] == "processing" and any(a.startswith(valid) for a in h["assigned"])
            )
            for i in (1, 2)
        ]
        sink_pid = health(p, base)["pid"]  # type: ignore[index]
        assert len({sink_pid, *(h["pid"] for h in children)}) == 3

        archive = archive_items(COMMENTS)
        half = len(archive.items) // 2
        p.feed_items(archive.items[:half])
        p.wait_for_metric(
            "streams_clickhouse_rows_total", lambda v: v >= COMMENTS * 0.15, table="comments", timeout=300
        )
        victim = children[0]["pid"]
        os.kill(victim, signal.SIGKILL)  # no shutdown, no final commit
        p.feed_items(archive.items[half:])  # the rest arrives while the child is down

        restarted = wait_health(p, base + 1, lambda h: h["pid"] != victim, timeout=180)
        assert restarted["role"] == "processing"
        pids = [sink_pid, restarted["pid"], children[1]["pid"]]
        assert "restarting in" in p.worker.tail(400)

        where = "source = 'archive'"
        p.wait_until(f"SELECT count() FROM comments FINAL WHERE {where}", lambda v: v == archive.comments, timeout=600)
        p.wait_until(
            f"SELECT countIf(edited_at IS NOT NULL) FROM comments FINAL WHERE {where}",
            lambda v: v == archive.edited,
            timeout=120,
        )
        # Every comment once: as many distinct ids as rows, and replays only repeated identical versions.
        assert p.scalar(f"SELECT uniqExact(comment_id) FROM comments FINAL WHERE {where}") == archive.comments
        threads = f"SELECT DISTINCT thread_id FROM comments FINAL WHERE {where}"
        keys = {
            "thread_1m": threads,
            "thread_trend_10m": threads,
            "author_1m": f"SELECT DISTINCT author FROM comments FINAL WHERE {where}",
            "category_1m": f"SELECT DISTINCT arrayJoin(flags) FROM comments FINAL WHERE {where}",
        }
        report = wait_for_windows(p, where, keys, timeout=300)
        assert report["thread_1m"][0] > COMMENTS // 5 and report["author_1m"][0] > COMMENTS // 5
        conflicting = p.scalar(
            "SELECT count() FROM (SELECT kind, key, window_start, version, "
            "uniqExact(comments, distinct_authors, flagged_comments, max_depth, mean_toxicity) AS variants "
            "FROM activity_windows GROUP BY kind, key, window_start, version HAVING variants > 1)"
        )
        assert conflicting == 0
    finally:
        code = p.stop()
    # SIGTERM to the supervisor reached every child: it exits cleanly and leaves none behind.
    assert code == 0, p.worker.tail(60)
    assert [pid for pid in pids if Path(f"/proc/{pid}").exists()] == []
