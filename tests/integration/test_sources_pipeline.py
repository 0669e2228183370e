"""Every export format through the real broker and worker into ClickHouse (one worker for all)."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

from streams.sources.registry import SourceItem, parse_source
from tests.integration.harness import Pipeline
from tests.unit.test_sources_formats import CSV_MAP, DATA

pytestmark = [pytest.mark.kafka, pytest.mark.clickhouse]

FILES = [
    ("reddit_comments.ndjson", {}),
    ("reddit_submissions.ndjson", {}),
    ("hn_items.ndjson", {}),
    ("hn_algolia.ndjson", {}),
    ("disqus_moderation.xml", {}),
    ("isso_fixture_disqus.xml", {}),
    ("wordpress.xml", {}),
    ("discourse_topic.json", {}),
    ("discourse_moderation.json", {}),
    ("commento_moderation.json", {}),
    ("mastodon_context.json", {}),
    ("comments.csv", {"column_map": CSV_MAP}),
]

# comment_id -> (thread_id, parent_id, author, posted_at UTC, body, source_state, source_kind)
EXPECTED = {
    "reddit:t1_kod0bke": (
        "reddit:t3_199i3jp",
        "reddit:t1_kihqg38",
        "Bitty_Bot",
        datetime(2024, 2, 1, tzinfo=UTC),
        None,
        "visible",
        "",
    ),
    "reddit:t1_kod0bkj": ("reddit:t3_1afnkw1", None, "[deleted]", datetime(2024, 2, 1, tzinfo=UTC), "", "removed", ""),
    "reddit:t3_j08bcm": (
        "reddit:t3_j08bcm",
        None,
        "ElectricalBlueberry",
        datetime.fromtimestamp(1606780808, UTC),
        None,
        "visible",
        "submission",
    ),
    "hn:1002": ("hn:1000", "hn:1001", "bob", datetime.fromtimestamp(1175714400, UTC), None, "visible", ""),
    "hn:1003": ("hn:1000", None, "[deleted]", datetime.fromtimestamp(1175714500, UTC), "", "deleted", ""),
    "hn:1004": ("hn:1000", None, "spammer", datetime.fromtimestamp(1175714600, UTC), "buy cheap pills", "hidden", ""),
    "hn:2002": ("hn:2000", "hn:2001", "frank", datetime(2008, 3, 1, 10, 7, tzinfo=UTC), "Nice.", "visible", ""),
    "disqus:p2": (
        "disqus:t100",
        "disqus:p1",
        "Spam Bot",
        datetime(2020, 1, 1, 9, 5, tzinfo=UTC),
        "Cheap watches www.spam.example",
        "spam",
        "",
    ),
    "disqus:p3": ("disqus:t100", "disqus:p1", "Ben", datetime(2020, 1, 1, 9, 10, tzinfo=UTC), "", "deleted", ""),
    "disqus:6": (
        "disqus:1337",
        None,
        "where am I?",
        datetime(2013, 10, 10, 19, 20, 29, tzinfo=UTC),
        "...",
        "visible",
        "",
    ),
    "wordpress:blog.example.org/comment/8": (
        "wordpress:blog.example.org/42",
        "wordpress:blog.example.org/comment/7",
        "Heidi",
        datetime(2019, 1, 2, 14, tzinfo=UTC),
        "Waiting for approval",
        "pending",
        "",
    ),
    "wordpress:blog.example.org/comment/9": (
        "wordpress:blog.example.org/42",
        None,
        "casino-deals",
        datetime(2019, 1, 2, 15, tzinfo=UTC),
        "Best casino bonus",
        "spam",
        "",
    ),
    "wordpress:blog.example.org/comment/11": (
        "wordpress:blog.example.org/42",
        None,
        "Other Blog",
        datetime(2019, 1, 3, 8, tzinfo=UTC),
        None,
        "visible",
        "pingback",
    ),
    "discourse:57/14": (
        "discourse:57",
        "discourse:57/1",
        "splattne",
        datetime(2013, 2, 5, 17, 14, 17, 364000, tzinfo=UTC),
        "What? So I have to post this every day?",
        "visible",
        "",
    ),
    "discourse:900/2": (
        "discourse:900",
        "discourse:900/1",
        "troll",
        datetime(2021, 6, 1, 10, 5, tzinfo=UTC),
        "",
        "deleted",
        "",
    ),
    "commento:aa02": (
        "commento:site.example/post/9",
        "commento:aa01",
        "Lee",
        datetime(2022, 2, 2, 10, 1, tzinfo=UTC),
        "Spammy link",
        "spam",
        "",
    ),
    "mastodon:mastodon.social/110446984249325790": (
        "mastodon:mastodon.social/110446983178245440",
        "mastodon:mastodon.social/110446983926957470",
        "halcy",
        datetime(2023, 5, 28, 15, 20, 35, 248000, tzinfo=UTC),
        "final status",
        "visible",
        "",
    ),
    "csv:2": (
        "csv:t-1",
        "csv:1",
        "niaj",
        datetime.fromtimestamp(1680350460, UTC),
        'Multi\nline, quoted "text"',
        "spam",
        "",
    ),
}


def _items() -> tuple[list[SourceItem], int, int]:
    items: list[SourceItem] = []
    for name, kw in FILES:
        items.extend(parse_source(DATA / name, **kw))  # type: ignore[arg-type]
    good = sum(1 for i in items if not i.bad)
    return items, good, len(items) - good


def _utc(value: object) -> datetime:
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    assert isinstance(value, datetime)
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def test_every_format_lands_with_thread_parent_author_time_body_and_state(pipeline: Pipeline) -> None:
    items, good, bad = _items()
    assert good >= 50 and bad >= 8
    stats = pipeline.feed_items(items)
    assert stats.sent == len(items) and stats.acked == len(items)
    sources = "('reddit','hackernews','disqus','wordpress','discourse','commento','mastodon','csv')"
    pipeline.wait_until(f"SELECT count() FROM comments FINAL WHERE source IN {sources}", lambda n: n >= good)
    pipeline.wait_until(
        "SELECT count() FROM dead_letters FINAL WHERE source_topic LIKE '%comments.raw'", lambda n: n >= bad
    )
    assert pipeline.scalar(f"SELECT count() FROM comments FINAL WHERE source IN {sources}") == good
    ids = "', '".join(EXPECTED)
    rows = pipeline.query(
        "SELECT comment_id, thread_id, parent_id, author, posted_at, body, source_state, source_kind "
        f"FROM comments FINAL WHERE comment_id IN ('{ids}')"
    )
    got = {r[0]: r[1:] for r in rows}
    assert set(got) == set(EXPECTED)
    for cid, (thread, parent, author, posted, body, state, kind) in EXPECTED.items():
        row = got[cid]
        assert (row[0], row[1], row[2]) == (thread, parent, author), cid
        assert _utc(row[3]) == posted, cid
        if body is not None:
            assert row[4] == body, cid
        assert (row[5], row[6]) == (state, kind), cid
    # Every source's own states landed, for dashboards to compare with our flags.
    states = dict(
        pipeline.query(
            f"SELECT source_state, count() FROM comments FINAL WHERE source IN {sources} GROUP BY source_state"
        )
    )
    assert {"visible", "spam", "deleted", "removed", "pending", "hidden"} <= set(states)
    # A reply to a deleted post keeps its parent and its depth.
    depth = pipeline.scalar("SELECT depth FROM comments FINAL WHERE comment_id = 'disqus:11'")
    assert depth == 1


def test_refeeding_every_format_lands_once(pipeline: Pipeline) -> None:
    items, good, _ = _items()
    before = pipeline.metric("streams_clickhouse_rows_total", table="comments")
    pipeline.feed_items(items)
    pipeline.wait_for_metric("streams_clickhouse_rows_total", lambda n: n >= before + good, table="comments")
    sources = "('reddit','hackernews','disqus','wordpress','discourse','commento','mastodon','csv')"
    assert pipeline.scalar(f"SELECT count() FROM comments FINAL WHERE source IN {sources}") == good
    assert pipeline.scalar(f"SELECT uniqExact(comment_id) FROM comments WHERE source IN {sources}") == good


def test_a_v1_producer_still_lands(pipeline: Pipeline) -> None:
    v1 = (
        Path(__file__).resolve().parents[2] / "schemas" / "events" / "examples" / "comment.v1.created.json"
    ).read_bytes()
    pipeline.feed_raw("td-0506d22904cf1e0a", [v1])
    pipeline.wait_until("SELECT count() FROM comments FINAL WHERE comment_id = 'c-9a7d3e1f0b2c4d58'", lambda n: n == 1)
    row = pipeline.query(
        "SELECT source_state, source_kind, author FROM comments FINAL WHERE comment_id = 'c-9a7d3e1f0b2c4d58'"
    )
    assert row[0] == ("", "", "Dabooda")


def test_feed_cli_then_reconcile_accounts_for_every_line(pipeline: Pipeline, tmp_path: Path) -> None:
    src = tmp_path / "hn.ndjson"
    src.write_bytes(
        (DATA / "hn_items.ndjson").read_bytes() + (DATA / "hn_items.ndjson").read_bytes().splitlines(True)[1]
    )
    done = pipeline.cli("feed", str(src))
    stderr = done.stderr.decode()
    assert done.returncode == 0, stderr
    assert "format hackernews" in stderr and "9 acknowledged" in stderr
    assert "line 7: not JSON" in stderr  # bad records are named, and sent on
    # Reconcile exits 1 while records are still on their way (the module's pipeline is shared, so
    # waiting for one row of this feed does not say the others have landed): ask until it settles.
    deadline = time.monotonic() + 120
    while True:
        done = pipeline.cli("reconcile", "--source", str(src))
        out = done.stdout.decode()
        if done.returncode == 0 or time.monotonic() > deadline:
            break
        time.sleep(1)
    assert done.returncode == 0, out + done.stderr.decode()
    # 9 read = 6 landed + 2 dead letters + 1 duplicate (the repeated line)
    assert " 9 " in out and " 6 " in out and " 2 " in out and " 1 " in out
    # A feed whose comment never landed is reported, with a non-zero exit.
    feeds = Path(pipeline.settings.data_dir).parent / "feeds"
    manifest = next(feeds.glob("*.json"))
    ids = manifest.with_suffix(".ids")
    ids.write_text(ids.read_text() + "hn:never-sent\n")
    manifest.write_text(manifest.read_text().replace('"read": 9', '"read": 10'))
    done = pipeline.cli("reconcile", "--source", str(src))
    assert done.returncode == 1 and "unaccounted" in done.stderr.decode()


def test_feed_dry_run_and_limit_send_nothing_or_less(pipeline: Pipeline) -> None:
    done = pipeline.cli("feed", "--dry-run", str(DATA / "wordpress.xml"))
    assert done.returncode == 0 and "dry run: parsed 7 records (1 bad)" in done.stderr.decode()
    done = pipeline.cli("feed", "--limit", "5", "--loop", str(DATA / "commento_moderation.json"))
    assert done.returncode == 0 and "sent 5 messages" in done.stderr.decode(), done.stderr.decode()


def test_feed_follow_tails_a_growing_file_and_ctrl_c_reports_the_acks(pipeline: Pipeline, tmp_path: Path) -> None:
    import signal
    import subprocess
    import sys
    import time

    import msgspec

    from streams.models import CommentEvent

    src = tmp_path / "live.jsonl"
    src.write_bytes(b"")
    proc = subprocess.Popen(
        [sys.executable, "-m", "streams.cli", "feed", "--follow", str(src)],
        env=pipeline.env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        # A suite started in the background (`nohup make test &`) ignores SIGINT, and an ignored
        # signal stays ignored across exec, so Python would never raise KeyboardInterrupt: what a
        # terminal's Ctrl-C delivers is the default disposition.
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    try:
        base = {"source": "live", "thread_id": "live-1", "author": "tail", "posted_at": "2024-01-01T00:00:00Z"}
        for n in range(3):
            event = msgspec.convert(
                {**base, "event_id": f"e-live-{n}", "comment_id": f"c-live-{n}", "body": f"#{n}"}, CommentEvent
            )
            with src.open("ab") as fh:
                fh.write(msgspec.json.encode(event) + b"\n")
            time.sleep(0.3)
        pipeline.wait_until("SELECT count() FROM comments FINAL WHERE thread_id = 'live-1'", lambda n: n == 3)
    finally:
        proc.send_signal(signal.SIGINT)
        _, stderr = proc.communicate(timeout=60)
    text = stderr.decode()
    assert proc.returncode == 130, text
    assert "the broker acknowledged 3" in text
