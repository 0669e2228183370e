"""`streams worker --second-stage` end to end: the worker and the second-stage process of its own under
one supervisor, on the real broker and the embedded engine. Every comment the inline scorer finds
borderline gets a newer row version with the second stage's verdict (`comments FINAL` shows it);
a SIGKILL of the second-stage process mid-feed loses none of them and doubles no comment; an edit
after the second look replaces it (and is looked at again)."""

from __future__ import annotations

import os
import signal
from datetime import UTC, timedelta
from pathlib import Path

import msgspec
import pytest
from prometheus_client.parser import text_string_to_metric_families

from streams.enrich.flags import load_moderation_config
from streams.enrich.flags.second_stage import second_stage_config
from streams.models import CommentEvent
from tests.integration.harness import Pipeline
from tests.integration.test_pipeline import feed_seed, seed_thread_id
from tests.integration.test_windows_crosscheck import archive_items
from tests.integration.test_worker_processes import health, wait_health

pytestmark = [pytest.mark.kafka, pytest.mark.clickhouse]

COMMENTS = 400
STAGE = second_stage_config(load_moderation_config())
assert STAGE is not None
SUFFIX = f"+{STAGE.id}"
#: The latest inline row (even stored version: streams.clickhouse.rows.stored_version) of each
#: comment that has a body and is not deleted, and whether the second stage wants it (any text
#: category at or above rescore_from).
WANTED = (
    "SELECT comment_id FROM (SELECT comment_id, argMax(scores, version) AS s, argMax(is_deleted, version) AS d, "
    "argMax(body, version) AS b FROM comments WHERE version % 2 = 0 AND {where} GROUP BY comment_id) "
    "WHERE d = 0 AND b != '' AND greatest(s['toxicity'], s['profanity'], s['identity_attack'], s['threat']) "
    f">= {STAGE.rescore_from}"
)
RESCORED = (
    "SELECT comment_id FROM comments FINAL WHERE {where} AND endsWith(model_version, '" + SUFFIX + "') "
    "AND version % 2 = 1"
)


def wanted_and_rescored(p: Pipeline, where: str) -> tuple[set[str], set[str]]:
    wanted = {r[0] for r in p.query(WANTED.format(where=where))}
    rescored = {r[0] for r in p.query(RESCORED.format(where=where))}
    return wanted, rescored


def test_the_second_stage_rescores_borderline_comments_and_survives_a_kill(broker: str, tmp_path: Path) -> None:
    p = Pipeline(tmp_path, broker, worker_args=("--second-stage",), web_ports=2)
    try:
        p.start()
        base = p.settings.web_port
        enriched = p.settings.topic("comments.enriched")
        second = wait_health(
            p, base + 1, lambda h: h["role"] == "second-stage" and any(a.startswith(enriched) for a in h["assigned"])
        )
        assert health(p, base)["role"] == "all"  # type: ignore[index]

        feed_seed(p)
        archive = archive_items(COMMENTS)
        half = len(archive.items) // 2
        p.feed_items(archive.items[:half])
        where = "source = 'archive'"
        p.wait_until(f"SELECT count() FROM comments FINAL WHERE {where} AND version % 2 = 1", lambda n: n >= 20)
        os.kill(second["pid"], signal.SIGKILL)  # no shutdown, no final commit
        p.feed_items(archive.items[half:])
        restarted = wait_health(p, base + 1, lambda h: h["pid"] != second["pid"], timeout=180)
        assert restarted["role"] == "second-stage"

        p.wait_until(f"SELECT count() FROM comments FINAL WHERE {where}", lambda n: n == archive.comments, timeout=300)

        def all_rescored(_: object) -> bool:
            wanted, rescored = wanted_and_rescored(p, where)
            return bool(wanted) and wanted <= rescored

        p.wait_until("SELECT 1", all_rescored, timeout=300)
        wanted, rescored = wanted_and_rescored(p, where)
        assert rescored == wanted  # nothing below the band, no deleted comment, was re-scored
        # Both versions were stored; FINAL shows each comment once.
        assert p.scalar(f"SELECT uniqExact(comment_id) FROM comments FINAL WHERE {where}") == archive.comments
        assert p.scalar(f"SELECT count() FROM comments WHERE {where}") > archive.comments

        # The sample thread's hateful comment: flagged by the second stage too, which says so.
        thread = seed_thread_id()
        p.wait_until(
            f"SELECT countIf(endsWith(model_version, '{SUFFIX}')) FROM comments FINAL WHERE thread_id = '{thread}'",
            lambda n: n >= 1,
        )
        rows = p.query(
            f"SELECT author, flags, reasons FROM comments FINAL WHERE thread_id = '{thread}' "
            f"AND endsWith(model_version, '{SUFFIX}')"
        )
        by_author = {author: (flags, reasons) for author, flags, reasons in rows}
        if "Adolph.H." in by_author:
            flags, reasons = by_author["Adolph.H."]
            assert "identity_attack" in flags, reasons

        # An edit after the second look: its inline row replaces the second stage's, then is re-scored.
        comment_id = sorted(rescored)[0]
        thread_id, author, posted_at = p.query(
            "SELECT thread_id, author, posted_at FROM comments FINAL WHERE comment_id = {c:String}", {"c": comment_id}
        )[0]
        posted_at = posted_at if posted_at.tzinfo else posted_at.replace(tzinfo=UTC)
        edit = CommentEvent(
            event_id=f"edit-{comment_id}",
            event_type="comment.edited",
            source="archive",
            thread_id=thread_id,
            comment_id=comment_id,
            author=author,
            posted_at=posted_at,
            edited_at=posted_at + timedelta(days=2),  # later than any edit the archive made
            body="Those people should all be deported, every last one of them, they are vermin.",
        )
        p.feed_raw(thread_id, [msgspec.json.encode(edit)])
        p.wait_until(
            f"SELECT body FROM comments FINAL WHERE comment_id = '{comment_id}'",
            lambda b: str(b).startswith("Those people"),
        )
        assert p.scalar("SELECT count() FROM dead_letters") == 0
        p.wait_until(
            f"SELECT model_version FROM comments FINAL WHERE comment_id = '{comment_id}'",
            lambda v: str(v).endswith(SUFFIX),
        )
        # Its metrics are on its own port.
        text = p.client.http.request("GET", f"http://127.0.0.1:{base + 1}/metrics").data.decode()
        received = [
            s.value
            for family in text_string_to_metric_families(text)
            for s in family.samples
            if s.name == "streams_events_in_total" and s.labels.get("agent") == "second_stage"
        ]
        assert received and received[0] > 0
    finally:
        code = p.stop()
    assert code == 0, p.worker.tail(60)
