"""`streams worker --second-stage` end to end: the worker and the second-stage process of its own under
one supervisor, on the real broker and the embedded engine. Every comment the inline scorer finds
borderline gets a newer row version with the second stage's verdict (`comments FINAL` shows it);
a SIGKILL of the second-stage process mid-feed loses none of them and doubles no comment; an edit
after the second look replaces it (and is looked at again)."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from datetime import UTC, timedelta
from pathlib import Path

import msgspec
import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from prometheus_client.parser import text_string_to_metric_families

from streams.enrich.flags import load_moderation_config
from streams.enrich.flags.second_stage import second_stage_config
from streams.kafka_security import aiokafka_options
from streams.models import CommentEvent
from streams.settings import load_settings
from tests.integration.harness import Pipeline
from tests.integration.test_pipeline import feed_seed, seed_thread_id
from tests.integration.test_windows_crosscheck import archive_items
from tests.integration.test_worker_processes import health, wait_health

pytestmark = [pytest.mark.kafka, pytest.mark.clickhouse]

COMMENTS = 400
STAGE = second_stage_config(load_moderation_config())
assert STAGE is not None
SUFFIX = f"+{STAGE.id}"
RESCORE_FROM = STAGE.rescore_from
#: What a user sees of each comment (FINAL): whether its row is the second stage's (odd stored
#: version, streams.clickhouse.rows.stored_version), carries its model version, is a deletion or has
#: no body, and its top text score. Read from FINAL rows only: a background merge may already have
#: dropped the inline row the second stage's replaced.
LATEST = (
    "SELECT comment_id, version % 2 = 1, endsWith(model_version, '" + SUFFIX + "'), is_deleted = 1 OR body = '', "
    "greatest(scores['toxicity'], scores['profanity'], scores['identity_attack'], scores['threat']) "
    "FROM comments FINAL WHERE {where}"
)
#: Comments re-scored although their inline verdict was below the band (while that row is still stored).
BELOW_BAND = (
    "SELECT comment_id FROM comments WHERE {where} AND version % 2 = 0 AND greatest(scores['toxicity'], "
    f"scores['profanity'], scores['identity_attack'], scores['threat']) < {RESCORE_FROM} "
    "AND (comment_id, version + 1) IN (SELECT comment_id, version FROM comments WHERE {where} AND version % 2 = 1)"
)


def pending_and_rescored(p: Pipeline, where: str) -> tuple[set[str], set[str]]:
    """The comments still showing an inline verdict the second stage should have replaced, and
    those showing the second stage's; asserts the second stage's rows are well formed."""
    pending: set[str] = set()
    rescored: set[str] = set()
    for comment_id, second, suffixed, empty, top in p.query(LATEST.format(where=where)):
        if second:
            assert suffixed and not empty, (comment_id, suffixed, empty)
            rescored.add(comment_id)
        elif not empty and top >= RESCORE_FROM:
            pending.add(comment_id)
    return pending, rescored


async def group_offsets(p: Pipeline, topic: str) -> str:
    """The second-stage group's committed offsets against the topic's end offsets, per partition."""
    group = load_settings({**p.env, "STREAMS_WORKER_ROLE": "second-stage"}).faust_app_id
    admin = AIOKafkaAdminClient(**aiokafka_options(p.settings))
    consumer = AIOKafkaConsumer(**aiokafka_options(p.settings))
    await admin.start()
    await consumer.start()
    try:
        committed = await admin.list_consumer_group_offsets(group)
        partitions = [TopicPartition(topic, i) for i in range(p.settings.partitions)]
        ends = await consumer.end_offsets(partitions)
        return ", ".join(
            f"{tp.partition}: committed {committed[tp].offset if tp in committed else None} of {ends[tp]}"
            for tp in partitions
        )
    finally:
        await consumer.stop()
        await admin.close()


def second_stage_report(p: Pipeline, where: str, port: int) -> str:
    """What a failed wait needs to be understood: the comments missing, the second stage's own view."""
    pending, rescored = pending_and_rescored(p, where)
    lines = [f"{len(pending)} comments not re-scored ({len(rescored)} are); first ones, every stored row:"]
    for comment_id in sorted(pending)[:5]:
        rows = p.query(
            "SELECT version, model_version, is_deleted, length(body) FROM comments WHERE comment_id = {c:String} "
            "ORDER BY version",
            {"c": comment_id},
        )
        lines.append(f"  {comment_id}: {rows}")
    answer = health(p, port)
    lines.append(f"second stage /health: {answer}")
    try:
        text = p.client.http.request("GET", f"http://127.0.0.1:{port}/metrics", timeout=5.0).data.decode()
        lines += [
            line
            for line in text.splitlines()
            if not line.startswith("#") and ("second_stage" in line or "consumer_lag" in line)
        ][:40]
    except Exception as exc:  # the report must not hide the failure it explains
        lines.append(f"second stage /metrics: {exc!r}")
    try:
        lines.append("group offsets: " + asyncio.run(group_offsets(p, p.settings.topic("comments.enriched"))))
    except Exception as exc:
        lines.append(f"group offsets: {exc!r}")
    if answer is not None:
        # mode's Worker logs every thread's stack and every asyncio task on SIGUSR1 (into the log).
        logged = len(p.worker.tail(100_000).splitlines())
        os.kill(answer["pid"], signal.SIGUSR1)
        time.sleep(3.0)
        stacks = p.worker.tail(100_000).splitlines()[logged:]
        lines += [f"the second stage's stacks ({len(stacks)} lines):", *stacks[:400]]
    return "\n".join(lines)


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
            pending, rescored = pending_and_rescored(p, where)
            return bool(rescored) and not pending

        try:
            p.wait_until("SELECT 1", all_rescored, timeout=300)
        except AssertionError as failed:
            raise AssertionError(f"{second_stage_report(p, where, base + 1)}\n{failed}") from None
        _, rescored = pending_and_rescored(p, where)
        assert p.query(BELOW_BAND.format(where=where)) == []  # nothing below the band was re-scored
        # FINAL shows each comment once (the second stage's row replaced the inline one; merges may
        # already have dropped the replaced rows, so the stored count says nothing).
        assert p.scalar(f"SELECT uniqExact(comment_id) FROM comments FINAL WHERE {where}") == archive.comments
        assert p.scalar(f"SELECT count() FROM comments FINAL WHERE {where}") == archive.comments

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
