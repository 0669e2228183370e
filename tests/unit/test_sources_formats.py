"""Export parsers on small fixtures (tests/data/sources/README.md says where each comes from)."""

from __future__ import annotations

import io
import json
from datetime import UTC, datetime
from pathlib import Path

import msgspec
import pytest
import zstandard

from streams.models import CommentEvent
from streams.sources.common import SourceParseError, html_to_text
from streams.sources.registry import SourceItem, SourceResult, detect, parse_source

DATA = Path(__file__).resolve().parents[1] / "data" / "sources"
CSV_MAP = {
    "comment_id": "msg_id",
    "parent_id": "reply_to",
    "author": "user",
    "body": "text",
    "posted_at": "ts",
    "thread_id": "topic",
    "state": "status",
}


def parsed(path: Path, fmt: str = "auto", **kw: object) -> tuple[list[CommentEvent], list[SourceItem], SourceResult]:
    result = parse_source(path, fmt, **kw)  # type: ignore[arg-type]
    items = list(result)
    events = [msgspec.json.decode(i.value, type=CommentEvent) for i in items if not i.bad]
    return events, [i for i in items if i.bad], result


def by_id(events: list[CommentEvent]) -> dict[str, CommentEvent]:
    return {e.comment_id: e for e in events}


@pytest.mark.parametrize(
    ("name", "fmt"),
    [
        ("reddit_comments.ndjson", "reddit"),
        ("reddit_submissions.ndjson", "reddit"),
        ("hn_items.ndjson", "hackernews"),
        ("hn_algolia.ndjson", "hackernews"),
        ("isso_fixture_disqus.xml", "disqus"),
        ("disqus_moderation.xml", "disqus"),
        ("wordpress.xml", "wordpress"),
        ("discourse_topic.json", "discourse"),
        ("discourse_moderation.json", "discourse"),
        ("commento_export.json", "commento"),
        ("commento_moderation.json", "commento"),
        ("mastodon_context.json", "mastodon"),
        ("comments.csv", "csv"),
    ],
)
def test_auto_detects_each_format_and_says_why(name: str, fmt: str) -> None:
    chosen, why = detect(DATA / name)
    assert chosen == fmt, why
    result = parse_source(DATA / name, "auto", column_map=CSV_MAP if fmt == "csv" else None)
    assert result.format == fmt and result.detected


def test_every_event_is_v2_with_a_stable_id_and_refeeding_gives_the_same_bytes() -> None:
    for path in sorted(DATA.iterdir()):
        if path.suffix not in (".ndjson", ".xml", ".json", ".csv"):
            continue
        kw = {"column_map": CSV_MAP} if path.suffix == ".csv" else {}
        first = [i.value for i in parse_source(path, **kw)]  # type: ignore[arg-type]
        again = [i.value for i in parse_source(path, **kw)]  # type: ignore[arg-type]
        assert first == again and first, path
        events, _, _ = parsed(path, **kw)
        assert all((e.schema_version == 2 and e.source_state is not None) or e.source == "csv" for e in events)
        assert len({e.comment_id for e in events}) == len(events), path


# -- Reddit -------------------------------------------------------------------------------------


def test_reddit_comments_threads_parents_times_and_deleted_states() -> None:
    events, bad, _ = parsed(DATA / "reddit_comments.ndjson")
    assert not bad and len(events) == 6
    e = by_id(events)
    top = e["reddit:t1_kod0bkd"]
    assert top.thread_id == "reddit:t3_1afjd7n" and top.parent_id is None
    assert top.posted_at == datetime(2024, 2, 1, tzinfo=UTC)  # float created_utc
    assert top.author == "DubsAli" and top.source_state == "visible"
    assert (
        top.url == "https://www.reddit.com/r/woodworking/comments/1afjd7n/a_full_maple_farmhouse_table_i_made/kod0bkd/"
    )
    assert e["reddit:t1_kod0bke"].parent_id == "reddit:t1_kihqg38"
    removed = e["reddit:t1_kod0bkj"]
    assert (removed.source_state, removed.body, removed.author) == ("removed", "", "[deleted]")
    deleted = e["reddit:t1_c0cmuon"]  # created_utc as a string
    assert (deleted.source_state, deleted.body) == ("deleted", "")
    assert deleted.posted_at == datetime.fromtimestamp(1251763201, UTC)
    # A deleted account's comment that is still there stays visible, with its text.
    kept = e["reddit:t1_c15"]
    assert (kept.author, kept.source_state, kept.body) == (
        "[deleted]",
        "visible",
        "Jython related topics by Frank Wierzbicki",
    )
    assert e["reddit:t1_c0cmuoo"].body.startswith(">Nebraska\n>Diocese")  # &gt; decoded
    assert all(ev.event_type == "comment.created" for ev in events)


def test_reddit_submissions_are_thread_roots_with_titles_and_edit_times() -> None:
    events, bad, _ = parsed(DATA / "reddit_submissions.ndjson")
    assert not bad
    e = by_id(events)
    edited = e["reddit:t3_j08bcm"]
    assert edited.thread_id == edited.comment_id and edited.source_kind == "submission"
    assert edited.thread_title == "Monthly Friend and Guild Tracker (December 2020)"
    assert edited.edited_at == datetime.fromtimestamp(1606781062, UTC)
    assert e["reddit:t3_1v3sg"].thread_title == "NUMBERS & WEB SITES"
    assert (e["reddit:t3_abdn5a"].source_state, e["reddit:t3_abdn5a"].body) == ("removed", "")


def test_reddit_bad_lines_come_back_with_their_line_numbers(tmp_path: Path) -> None:
    src = tmp_path / "bad.ndjson"
    good = (DATA / "reddit_comments.ndjson").read_bytes().splitlines()[0]
    src.write_bytes(good + b"\n\n{not json\n" + b'{"id": "x1", "link_id": "t3_a", "author": "a", "body": "b"}\n')
    events, bad, _ = parsed(src, "reddit")
    assert len(events) == 1
    assert [b.reason.split(":")[0] for b in bad] == ["line 3", "line 4"]
    assert bad[0].value == b"{not json"  # the original bytes, for the dead-letter queue
    assert "created_utc" in (bad[1].reason or "")


def test_reddit_zst_dump_with_a_2_gib_window(tmp_path: Path) -> None:
    plain = (DATA / "reddit_comments.ndjson").read_bytes()
    params = zstandard.ZstdCompressionParameters(window_log=31, enable_ldm=True)
    buf = io.BytesIO()
    with zstandard.ZstdCompressor(compression_params=params).stream_writer(buf, closefd=False) as writer:
        writer.write(plain)
    data = buf.getvalue()
    assert zstandard.get_frame_parameters(data).window_size == 2**31  # as `zstd --long=31` writes
    with pytest.raises(zstandard.ZstdError):
        zstandard.ZstdDecompressor().stream_reader(io.BytesIO(data)).read()  # the default limit refuses it
    src = tmp_path / "RC_2024-02.zst"
    src.write_bytes(data)
    assert detect(src)[0] == "reddit"
    result = parse_source(src)
    values = [i.value for i in result]
    assert values == [i.value for i in parse_source(DATA / "reddit_comments.ndjson")]
    assert result.file is not None and result.file.bytes_read == len(data)


# -- Hacker News --------------------------------------------------------------------------------


def test_hn_firebase_items_threads_html_and_states() -> None:
    events, bad, result = parsed(DATA / "hn_items.ndjson")
    e = by_id(events)
    story = e["hn:1000"]
    assert story.source_kind == "story" and story.thread_title == 'Show HN: A "quick" comment pipeline'
    first = e["hn:1001"]
    assert first.thread_id == "hn:1000" and first.parent_id is None  # directly under the story
    assert first.body == "It's fast.\n\nSecond paragraph with a link & italics."
    reply = e["hn:1002"]
    assert reply.parent_id == "hn:1001" and reply.posted_at == datetime.fromtimestamp(1175714400, UTC)
    assert "  indented code\n  kept" in reply.body and reply.body.endswith("Agreed > 1.")
    assert e["hn:1005"].thread_id == "hn:1000" and e["hn:1005"].parent_id == "hn:1002"
    deleted = e["hn:1003"]
    assert (deleted.source_state, deleted.author, deleted.body) == ("deleted", "[deleted]", "")
    dead = e["hn:1004"]
    assert (dead.source_state, dead.body) == ("hidden", "buy cheap pills")
    assert [b.reason.split(":")[0] for b in bad] == ["line 7", "line 8"]
    assert "time" in (bad[1].reason or "")
    assert not result.warnings


def test_hn_algolia_hits_use_story_ids() -> None:
    events, bad, _ = parsed(DATA / "hn_algolia.ndjson")
    assert not bad
    e = by_id(events)
    assert e["hn:2000"].source_kind == "story" and e["hn:2000"].body == "Tell us\n\nBe brief."
    assert e["hn:2001"].thread_id == "hn:2000" and e["hn:2001"].parent_id is None
    assert e["hn:2001"].body == "A parser for <everything>."
    assert e["hn:2002"].parent_id == "hn:2001"
    assert e["hn:2002"].posted_at == datetime(2008, 3, 1, 10, 7, tzinfo=UTC)  # from created_at


def test_hn_a_json_array_and_an_unseen_story_warn_but_land(tmp_path: Path) -> None:
    src = tmp_path / "items.json"
    src.write_text(
        json.dumps([{"id": 5, "type": "comment", "by": "x", "time": 1, "parent": 4, "text": "hi"}], indent=1)
    )
    events, bad, result = parsed(src, "hackernews")
    assert not bad and events[0].thread_id == "hn:4" and events[0].parent_id is None
    assert any("story of parent 4 not seen" in w for w in result.warnings)


# -- Disqus -------------------------------------------------------------------------------------


def test_disqus_isso_fixture_orphans_and_deleted_parents_land() -> None:
    events, bad, result = parsed(DATA / "isso_fixture_disqus.xml")
    assert not bad
    e = by_id(events)
    assert set(e) == {"disqus:4", "disqus:5", "disqus:6", "disqus:8", "disqus:9", "disqus:11"}
    assert e["disqus:5"].parent_id == "disqus:4" and e["disqus:5"].body == "Hello, World."
    assert e["disqus:5"].thread_title == "Hello, World!" and e["disqus:5"].url == "http://example.org/"
    assert e["disqus:6"].thread_id == "disqus:1337" and e["disqus:6"].thread_title is None  # orphan
    assert any("thread 1337 is not in the export" in w for w in result.warnings)
    assert e["disqus:8"].thread_id == "disqus:7" and e["disqus:8"].thread_title is None  # empty title
    assert e["disqus:9"].source_state == "deleted" and e["disqus:11"].parent_id == "disqus:9"
    assert e["disqus:4"].posted_at == datetime(2013, 10, 10, 19, 20, 29, tzinfo=UTC)


def test_disqus_spam_deleted_missing_parent_and_bad_elements() -> None:
    events, bad, result = parsed(DATA / "disqus_moderation.xml")
    e = by_id(events)
    assert e["disqus:p1"].body == "First & foremost.\n\nSecond paragraph."
    assert e["disqus:p1"].thread_title == "Budget & taxes" and e["disqus:p1"].author == "Ann Reader"
    assert (e["disqus:p2"].source_state, e["disqus:p2"].parent_id) == ("spam", "disqus:p1")
    assert (e["disqus:p3"].source_state, e["disqus:p3"].body) == ("deleted", "")
    assert e["disqus:p4"].author == "cleo" and e["disqus:p4"].parent_id == "disqus:p999"
    assert e["disqus:p5"].thread_id == "disqus:no-thread"
    assert any("p999 (named by post p4)" in w for w in result.warnings)
    assert len(bad) == 1 and (bad[0].reason or "").startswith("post 6 (element 7)")
    assert bad[0].value.startswith(b"<") and b"yesterday" in bad[0].value


def test_xml_that_is_not_well_formed_names_line_and_column(tmp_path: Path) -> None:
    src = tmp_path / "broken.xml"
    src.write_text('<disqus xmlns="http://disqus.com">\n<post>\n</disqus>\n')
    with pytest.raises(SourceParseError, match=r"line 3, column \d+"):
        list(parse_source(src, "disqus"))


# -- WordPress ----------------------------------------------------------------------------------


def test_wordpress_states_pingbacks_parents_and_an_undeclared_prefix() -> None:
    events, bad, result = parsed(DATA / "wordpress.xml", tz="Europe/Berlin")
    e = by_id(events)
    site = "wordpress:blog.example.org"
    grace = e[f"{site}/comment/7"]
    assert grace.thread_id == f"{site}/42" and grace.thread_title == "Hello & welcome"
    assert grace.posted_at == datetime(2019, 1, 2, 12, tzinfo=UTC) and grace.body == "Lovely post & more"
    assert grace.source_state == "visible" and grace.source_kind is None
    assert grace.url == "https://blog.example.org/2019/01/hello/#comment-7"
    pending = e[f"{site}/comment/8"]
    assert (pending.source_state, pending.parent_id) == ("pending", f"{site}/comment/7")
    assert pending.posted_at == datetime(2019, 1, 2, 13, tzinfo=UTC)  # local 14:00 in Berlin, no GMT date
    assert e[f"{site}/comment/9"].source_state == "spam"
    assert e[f"{site}/comment/10"].source_state == "removed"
    assert e[f"{site}/comment/11"].source_kind == "pingback" and e[f"{site}/comment/11"].body.startswith("[…]")
    assert e[f"{site}/comment/12"].source_kind == "trackback"
    assert any("prefix 'dc' is used but never declared" in w for w in result.warnings)
    assert len(bad) == 1 and (bad[0].reason or "").startswith("comment 7 (item 2")
    assert len(events) == 6  # nothing given twice after the re-read for the undeclared prefix


# -- Discourse, Commento, Mastodon ----------------------------------------------------------------


def test_discourse_topic_posts_replies_edits_and_kinds() -> None:
    events, bad, _ = parsed(DATA / "discourse_topic.json")
    assert not bad and len(events) == 4
    e = by_id(events)
    first = e["discourse:57/1"]
    assert first.thread_id == "discourse:57" and first.thread_title == "THIS SITE IS A SANDBOX -- it is reset every day"
    assert first.source_kind == "topic" and first.author == "samsaffron"
    assert first.edited_at is not None and first.edited_at > first.posted_at  # version 5
    assert first.body.startswith("Welcome!\n\nTry is a sandbox")
    assert e["discourse:57/2"].source_kind == "moderator_action"
    assert e["discourse:57/14"].parent_id == "discourse:57/1" and e["discourse:57/14"].author == "splattne"
    assert e["discourse:57/3"].posted_at == datetime(2013, 2, 4, 20, 29, 0, 843000, tzinfo=UTC)


def test_discourse_deleted_hidden_and_a_bad_post() -> None:
    events, bad, _ = parsed(DATA / "discourse_moderation.json")
    e = by_id(events)
    assert (e["discourse:900/2"].source_state, e["discourse:900/2"].body) == ("deleted", "")
    assert (e["discourse:900/3"].source_state, e["discourse:900/3"].parent_id) == ("hidden", "discourse:900/2")
    assert len(bad) == 1 and (bad[0].reason or "").startswith("post 4") and "created_at" in (bad[0].reason or "")


def test_commento_export_authors_replies_and_states() -> None:
    events, bad, _ = parsed(DATA / "commento_export.json")
    assert not bad
    anon, first, reply = events
    assert anon.author == "Anonymous" and anon.thread_id == "commento:example.com/blog/post/2"
    assert first.author == "User5276" and reply.author == "Saturnin Uf"
    assert reply.parent_id == first.comment_id and reply.thread_id == first.thread_id
    assert reply.posted_at == datetime(2021, 5, 11, 15, 43, 1, 852651, tzinfo=UTC)
    events, bad, _ = parsed(DATA / "commento_moderation.json")
    assert [e.source_state for e in events] == ["pending", "spam", "deleted"]
    assert events[2].body == "" and len(bad) == 1 and (bad[0].reason or "").startswith("comment 4")


def test_mastodon_context_thread_and_parents() -> None:
    events, bad, _ = parsed(DATA / "mastodon_context.json")
    assert not bad
    root, final = events
    prefix = "mastodon:mastodon.social/"
    assert root.comment_id == prefix + "110446983178245440" and root.parent_id is None
    assert final.thread_id == root.comment_id == root.thread_id
    assert final.parent_id == prefix + "110446983926957470"  # the status the context was asked for
    assert (final.author, final.body) == ("halcy", "final status")
    assert final.posted_at == datetime(2023, 5, 28, 15, 20, 35, 248000, tzinfo=UTC)


def test_a_document_that_is_not_json_is_one_clear_error(tmp_path: Path) -> None:
    src = tmp_path / "topic.json"
    src.write_text('{"post_stream": {"posts": [\n')
    with pytest.raises(SourceParseError, match="not a JSON document"):
        list(parse_source(src, "discourse"))


# -- CSV ----------------------------------------------------------------------------------------


def test_csv_with_a_column_map() -> None:
    events, bad, _ = parsed(DATA / "comments.csv", column_map=CSV_MAP)
    e = by_id(events)
    assert e["csv:1"].body == "Hello, world" and e["csv:1"].thread_id == "csv:t-1"
    assert e["csv:2"].body == 'Multi\nline, quoted "text"' and e["csv:2"].parent_id == "csv:1"
    assert e["csv:2"].posted_at == datetime.fromtimestamp(1680350460, UTC) and e["csv:2"].source_state == "spam"
    assert e["csv:3"].source_state == "deleted" and e["csv:3"].posted_at == datetime(2023, 4, 1, 12, 2, tzinfo=UTC)
    assert [(b.reason or "").split(":")[0] for b in bad] == ["line 6", "line 7"]  # multi-line row counted


def test_csv_without_the_needed_columns_says_how_to_map_them(tmp_path: Path) -> None:
    with pytest.raises(SourceParseError, match="--map body=COLUMN"):
        list(parse_source(DATA / "comments.csv", "csv"))


def test_html_to_text_keeps_paragraphs_and_decodes_entities() -> None:
    assert html_to_text("a<p>b &amp; c</p><p>d<br>e</p>") == "a\n\nb & c\n\nd\ne"
    assert html_to_text("plain &lt;text&gt;") == "plain <text>"
    assert html_to_text("<script>x()</script>ok") == "ok"


def test_follow_lines_waits_for_whole_lines_and_rereads_a_truncated_file(tmp_path: Path) -> None:
    from streams.feed import follow_lines, limited

    src = tmp_path / "grow.jsonl"
    src.write_bytes(b"one\ntw")
    rounds = iter(range(10))
    writes = {1: b"o\n", 3: None}

    def stop() -> bool:
        n = next(rounds)
        if n in writes:
            if writes[n] is None:
                src.write_bytes(b"new\n")  # truncated and rewritten (rotation)
            else:
                with src.open("ab") as fh:
                    fh.write(writes[n] or b"")
        return n >= 5

    got = [line for line in follow_lines(src, stop=stop) if line is not None]
    assert got == [b"one\n", b"two\n", b"new\n"]
    marked: list[SourceItem | None] = [None, SourceItem("k", b"1"), None, SourceItem("k", b"2"), SourceItem("k", b"3")]
    assert [i.value if i else None for i in limited(marked, 2)] == [None, b"1", None, b"2"]
