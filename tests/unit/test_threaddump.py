"""Thread-dump parser: the shipped sample, a hand-written unicode dump, garbage, and a round-trip property."""

from __future__ import annotations

import pickle
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from streams.models import CommentEvent
from streams.sources import (
    ThreadDump,
    ThreadDumpError,
    parse_source,
    parse_thread_dump,
    resolve_parent_id,
)

ROOT = Path(__file__).resolve().parents[2]
SAMPLE = ROOT / "streams" / "samples" / "000_0506d22904cf1e0a.txt"
UNICODE_DUMP = ROOT / "tests" / "data" / "unicode_dump.txt"
NBSP = "\u00a0"


def utc(day: int, hour: int, minute: int) -> datetime:
    return datetime(2018, 3, day, hour, minute, tzinfo=UTC)


def parse(text: str, tz: str = "UTC") -> ThreadDump:
    return parse_thread_dump(text, source_name="test.txt", tz=tz)


@pytest.fixture(scope="module")
def sample_text() -> str:
    return SAMPLE.read_text(encoding="utf-8")


@pytest.fixture(scope="module")
def sample(sample_text: str) -> ThreadDump:
    return parse_thread_dump(sample_text, source_name=SAMPLE.name)


def by_key(dump: ThreadDump) -> dict[tuple[str, datetime], CommentEvent]:
    return {(c.author, c.posted_at): c for c in dump.comments}


# --- the shipped sample ---------------------------------------------------------------------------

EXPECTED_SAMPLE = [
    ("IH8OBAMA", "Dindu Nuffins", utc(20, 13, 30)),
    ("Dabooda", "IH8OBAMA", utc(20, 14, 10)),
    ("are we there yet", "Dabooda", utc(20, 16, 24)),
    ("FireBrander", "FireBrander", utc(20, 12, 41)),
    ("Adolph.H.", "Dindu Nuffins", utc(20, 11, 54)),
    ("slopz38", "Jim in MN", utc(20, 12, 6)),
    ("ZeroSpam", "kralizec", utc(21, 2, 50)),
    ("FireBrander", "ExPat2018", utc(20, 12, 31)),
    ("HRClinton", "Belrev", utc(20, 12, 9)),
]


def test_sample_authors_parents_times_in_file_order(sample: ThreadDump) -> None:
    got = [(c.author, c.parent_author, c.posted_at) for c in sample.comments]
    assert got == EXPECTED_SAMPLE
    assert sample.warnings == []


def test_sample_title_article_and_event_fields(sample: ThreadDump) -> None:
    assert sample.title == "Trump Calls Putin To Congratulate Him On Re-election Victory"
    assert sample.article.startswith("When he was asked by the media yesterday")
    assert sample.article.endswith("or at least that's what CNN will explain shortly.")
    assert "\n\n\n" not in sample.article
    assert sample.thread_id.startswith("td-") and len(sample.thread_id) == 3 + 16
    for c in sample.comments:
        assert c.source == "threaddump"
        assert c.event_type == "comment.created"
        assert c.thread_id == sample.thread_id
        assert c.thread_title == sample.title
        assert c.posted_at.tzinfo is UTC
        # The events must pass the schema (constraints are only checked on decode).
        assert msgspec.json.decode(msgspec.json.encode(c), type=CommentEvent) == c


def test_sample_bodies(sample: ThreadDump) -> None:
    c = by_key(sample)
    assert c[("slopz38", utc(20, 12, 6))].body == ""
    assert c[("ZeroSpam", utc(21, 2, 50))].body == ""

    ih8 = c[("IH8OBAMA", utc(20, 13, 30))].body
    assert ih8.startswith(f"TRUMP: Congrats, Vlad.{NBSP} You are going to have to teach me")
    assert ih8.split("\n\n")[1] == "VLAD: I didn't do nuffin."
    assert len(ih8.split("\n\n")) == 5
    assert ih8.endswith("saying I was going to put her in jail.")

    self_reply = c[("FireBrander", utc(20, 12, 41))].body
    assert self_reply.startswith('Russian "assassins" freely running around the UK?\n\nCarrying around')

    assert c[("are we there yet", utc(20, 16, 24))].body.startswith("I give lectures in Russia")
    # Non-breaking spaces are content: kept inside and at the edges of paragraphs.
    hrc = c[("HRClinton", utc(20, 12, 9))].body
    assert f'\n\n{NBSP} {NBSP}Wolf Schwitzer:{NBSP}"Oh vey!"\n\n' in hrc
    assert hrc.endswith(f'Dubya:{NBSP}"Well, oil be!"{NBSP}')
    assert "Mika Brzeźinski" in hrc
    assert c[("Adolph.H.", utc(20, 11, 54))].body.endswith(f"bucket{NBSP}stops.{NBSP}")
    assert all("In reply to by" not in x.body and "Permalink" not in x.body for x in sample.comments)


def test_sample_parent_resolution(sample: ThreadDump) -> None:
    c = by_key(sample)
    ih8 = c[("IH8OBAMA", utc(20, 13, 30))]
    dabooda = c[("Dabooda", utc(20, 14, 10))]
    assert ih8.parent_id is None  # Dindu Nuffins is not in the dump
    assert dabooda.parent_id == ih8.comment_id
    assert c[("are we there yet", utc(20, 16, 24))].parent_id == dabooda.comment_id
    # The self-reply answers FireBrander's earlier comment, not itself.
    assert c[("FireBrander", utc(20, 12, 41))].parent_id == c[("FireBrander", utc(20, 12, 31))].comment_id
    for absent in [("Adolph.H.", 20, 11, 54), ("slopz38", 20, 12, 6), ("ZeroSpam", 21, 2, 50)]:
        assert c[(absent[0], utc(*absent[1:]))].parent_id is None
    assert c[("FireBrander", utc(20, 12, 31))].parent_id is None
    assert c[("HRClinton", utc(20, 12, 9))].parent_id is None


def test_sample_ids_are_deterministic_and_unique(sample_text: str, sample: ThreadDump) -> None:
    again = parse_thread_dump(sample_text, source_name="another-name.txt")
    assert again.thread_id == sample.thread_id
    assert [c.comment_id for c in again.comments] == [c.comment_id for c in sample.comments]
    assert [c.event_id for c in again.comments] == [c.event_id for c in sample.comments]
    ids = [c.comment_id for c in sample.comments]
    events = [c.event_id for c in sample.comments]
    assert len(set(ids)) == len(ids) == 9
    assert len(set(events)) == 9
    assert all(i.startswith("c-") and len(i) == 18 for i in ids)
    assert all(e.startswith("e-") and len(e) == 18 for e in events)


def test_sample_ids_pinned(sample: ThreadDump) -> None:
    # Ids are a contract with ClickHouse dedup: changing the recipe must be a deliberate act.
    assert sample.thread_id == "td-7f4f301390d862da"
    assert sample.comments[0].comment_id == "c-46bdb914e9d448a4"


def test_sample_crlf_gives_the_same_result(sample_text: str, sample: ThreadDump) -> None:
    crlf = parse("\ufeff" + sample_text.replace("\n", "\r\n"))
    assert crlf.thread_id == sample.thread_id
    assert crlf.comments == sample.comments


def test_tz_new_york_is_dst_on_2018_03_20(sample_text: str) -> None:
    dump = parse(sample_text, tz="America/New_York")
    first = dump.comments[0]
    assert first.author == "IH8OBAMA"
    assert first.posted_at == utc(20, 17, 30)
    # 02:50 local on the 21st is 06:50 UTC.
    assert dump.comments[6].posted_at == utc(21, 6, 50)
    # Different instants, different comment ids; the thread is the same.
    utc_dump = parse(sample_text)
    assert dump.thread_id == utc_dump.thread_id
    assert dump.comments[0].comment_id != utc_dump.comments[0].comment_id


def test_unknown_tz_is_a_clear_error(sample_text: str) -> None:
    for bad in ["Mars/Olympus_Mons", "", "../../etc/passwd", "/etc/localtime"]:
        with pytest.raises(ThreadDumpError, match="unknown time zone"):
            parse(sample_text, tz=bad)


# --- a hand-written dump --------------------------------------------------------------------------


def test_unicode_dump() -> None:
    dump = parse(UNICODE_DUMP.read_text(encoding="utf-8"))
    assert dump.title == "Ein Titel mit Ümlauten — 2018"
    assert dump.article == "Erster Absatz des Artikels.\n\nZweiter Absatz,\nüber zwei Zeilen."
    got = [(c.author, c.parent_author, c.posted_at, c.body) for c in dump.comments]
    assert got == [
        (
            "Zoë Ångström",
            None,
            utc(19, 9, 15),
            f"Hallo 世界 — first paragraph.\n\nSecond paragraph with a non-breaking space: a{NBSP}b.",
        ),
        ("李雷", "Zoë Ångström", utc(19, 9, 20), "回复：你好"),
        ("Jim in MN", None, utc(19, 10, 0), ""),
        ("Zoë Ångström", "李雷", utc(19, 10, 5), "Thanks!\nSame paragraph, second line."),
        (
            "Ghost Reader",
            "Jim in MN",
            utc(18, 23, 59),
            "Posted before Jim's comment, so no parent in this dump.",
        ),
    ]
    zoe, li, jim, zoe2, ghost = dump.comments
    assert zoe.parent_id is None  # top-level
    assert li.parent_id == zoe.comment_id  # reply to a top-level comment
    assert zoe2.parent_id == li.comment_id
    assert jim.parent_id is None
    assert ghost.parent_id is None  # Jim's only comment is later than the reply
    assert dump.warnings == []


def test_top_level_only_and_zero_comments() -> None:
    assert parse("Just a title\n").comments == []
    empty = parse("Title\n\nAn article.\n\nWith two paragraphs.\n")
    assert (empty.title, empty.article, empty.comments) == (
        "Title",
        "An article.\n\nWith two paragraphs.",
        [],
    )


def test_weekday_mismatch_is_a_warning() -> None:
    dump = parse("T\n\nBob Mon, 03/20/2018 - 10:00 Permalink\n\nhi\n")
    assert [c.author for c in dump.comments] == ["Bob"]
    assert dump.warnings == ["test.txt: line 3: header says Mon but 03/20/2018 - 10:00 is a Tue"]


def test_dst_gap_and_overlap_are_warnings() -> None:
    gap = parse("T\n\nBob Sun, 03/11/2018 - 02:30 Permalink\n", tz="America/New_York")
    assert len(gap.warnings) == 1 and "does not exist" in gap.warnings[0]
    overlap = parse("T\n\nBob Sun, 11/04/2018 - 01:30 Permalink\n", tz="America/New_York")
    assert len(overlap.warnings) == 1 and "ambiguous" in overlap.warnings[0]
    assert overlap.comments[0].posted_at == datetime(2018, 11, 4, 5, 30, tzinfo=UTC)  # the EDT reading


def test_exact_duplicates_get_distinct_stable_ids() -> None:
    block = "Bob Tue, 03/20/2018 - 10:00 Permalink\n\nsame\n\n"
    text = "T\n\n" + block * 3
    first, second = parse(text), parse(text)
    ids = [c.comment_id for c in first.comments]
    assert len(set(ids)) == 3
    assert ids == [c.comment_id for c in second.comments]
    # The first copy keeps the id it has when alone.
    assert ids[0] == parse("T\n\n" + block).comments[0].comment_id
    assert len(first.warnings) == 2 and "duplicate" in first.warnings[0]


def test_same_minute_self_replies_do_not_form_a_cycle() -> None:
    text = (
        "T\n\n"
        "Ann Ann Tue, 03/20/2018 - 10:00 Permalink\n\none\n\nIn reply to by Ann\n\n"
        "Ann Ann Tue, 03/20/2018 - 10:00 Permalink\n\ntwo\n\nIn reply to by Ann\n"
    )
    a, b = parse(text).comments
    assert a.parent_id is None
    assert b.parent_id == a.comment_id


def test_resolve_parent_id() -> None:
    t = datetime(2018, 3, 20, 12, 0, tzinfo=UTC)
    m = timedelta(minutes=1)
    cands = [("a1", "Ann", t - m), ("b1", "Bob", t), ("a2", "Ann", t), ("a3", "Ann", t), ("a4", "Ann", t + m)]
    assert resolve_parent_id(cands, "Ann", t) == "a2"  # latest not after; ties -> first in order
    assert resolve_parent_id(cands, "Ann", t, exclude_id="a2") == "a3"
    assert resolve_parent_id(cands, "Ann", t - m) == "a1"
    assert resolve_parent_id(cands, "Ann", t - 2 * m) is None
    assert resolve_parent_id(cands, "Carl", t) is None
    assert resolve_parent_id(cands, None, t) is None
    assert resolve_parent_id([], "Ann", t) is None


# --- garbage --------------------------------------------------------------------------------------

GARBAGE = [
    ("", r"line 1: empty input"),
    (" \n\t\n\n", r"line 1: empty input"),
    ("\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", r"line 2: control character U\+001A .*binary"),
    ("Title\n\nok\nbad \x00 byte\n", r"line 4: control character U\+0000"),
    ("Title\n\nlone \udcff surrogate\n", r"line 3: control character U\+DCFF"),
    ('{"event_id": "e-1", "author": "x"}\n', r"line 1: line is JSON.*--format jsonl"),
    ("\n\nBob Tue, 03/20/2018 - 10:00 Permalink\n\nhi\n", r"line 3: no title"),
    ("T\n\nBob Tue, 13/45/2018 - 10:00 Permalink\n", r"line 3: impossible date/time '13/45/2018 - 10:00'"),
    ("T\n\nBob Tue, 02/30/2018 - 10:00 Permalink\n", r"line 3: impossible date/time"),
    ("T\n\nBob Tue, 03/20/2018 - 25:00 Permalink\n", r"line 3: impossible date/time"),
    ("T\n\nBob Xyz, 03/20/2018 - 10:00 Permalink\n", r"line 3: unknown day name 'Xyz'"),
    ("T\n\nBob Tue, 03/20/2018 10:00 Permalink\n", r"line 3: malformed comment header"),
    ("T\n\nTue, 03/20/2018 - 10:00 Permalink\n", r"line 3: malformed comment header"),
    ("T\n\nIn reply to by Bob\n", r"line 3: 'In reply to by' footer before any comment header"),
    (
        "T\n\nAnn Bob Tue, 03/20/2018 - 10:00 Permalink\n\nhi\n\nIn reply to by Carl\n",
        r"line 3: header names 'Ann Bob' do not end with the footer's parent author 'Carl' "
        r"\(footer at line 7\)",
    ),
    (
        "T\n\nBob Tue, 03/20/2018 - 10:00 Permalink\n\nIn reply to by Bob\n",
        r"line 3: header names 'Bob' do not end with",
    ),
    (
        "T\n\nAnn Bob Tue, 03/20/2018 - 10:00 Permalink\n\nIn reply to by Bob\n\ntrailing text\n",
        r"line 5: 'In reply to by' line inside a comment",
    ),
    ("T\n\nAnn Tue, 03/20/2018 - 10:00 Permalink\n\n" + "x" * 1_000_001 + "\n", r"line 3: .*body longer"),
    ("T\n\n" + "A" * 600 + " Tue, 03/20/2018 - 10:00 Permalink\n", r"line 3: author name longer"),
]


@pytest.mark.parametrize(("text", "match"), GARBAGE, ids=range(len(GARBAGE)))
def test_garbage_raises_thread_dump_error(text: str, match: str) -> None:
    with pytest.raises(ThreadDumpError, match=r"^test\.txt: " + match) as info:
        parse(text)
    message = str(info.value)
    assert "\n" not in message
    assert info.value.source_name == "test.txt"


def test_error_carries_line_number_and_pickles() -> None:
    with pytest.raises(ThreadDumpError) as info:
        parse("T\n\nBob Tue, 13/45/2018 - 10:00 Permalink\n")
    assert info.value.line_no == 3
    assert isinstance(info.value, ValueError)
    assert str(pickle.loads(pickle.dumps(info.value))) == str(info.value)


def test_year_out_of_range_after_tz_conversion() -> None:
    with pytest.raises(ThreadDumpError, match=r"line 3: time .* out of range"):
        parse("T\n\nBob Mon, 01/01/0001 - 00:00 Permalink\n", tz="Asia/Tokyo")


# --- registry, threaddump side --------------------------------------------------------------------


def test_parse_source_threaddump(tmp_path: Path, sample: ThreadDump) -> None:
    result = parse_source(SAMPLE)  # auto: .txt -> threaddump
    assert result.format == "threaddump"
    items = list(result)
    assert result.count == len(items) == 9 and result.bad_count == 0
    assert {i.key for i in items} == {sample.thread_id}
    # Produced in posting order, not file order: a replay then reaches the windows as it happened.
    produced = [msgspec.json.decode(i.value, type=CommentEvent) for i in items]
    assert produced == sorted(sample.comments, key=lambda c: c.posted_at)
    assert [c.posted_at for c in produced] == sorted(c.posted_at for c in produced)
    assert result.warnings == []

    ny = [msgspec.json.decode(i.value, type=CommentEvent) for i in parse_source(SAMPLE, tz="America/New_York")]
    ih8obama = next(c for c in ny if c.author == "IH8OBAMA")
    assert ih8obama.posted_at == utc(20, 17, 30)


def test_parse_source_rejects_non_utf8(tmp_path: Path) -> None:
    path = tmp_path / "latin1.txt"
    path.write_bytes("Title\n\nBj\xf6rn Tue, 03/20/2018 - 10:00 Permalink\n".encode("latin-1"))
    with pytest.raises(ThreadDumpError, match=r"latin1\.txt: line 3: not UTF-8 text"):
        parse_source(path)


def test_parse_source_rejects_bad_tz_and_format(tmp_path: Path) -> None:
    with pytest.raises(ThreadDumpError, match="unknown time zone 'Nowhere/Town'"):
        parse_source(SAMPLE, tz="Nowhere/Town")
    with pytest.raises(ValueError, match="unknown format 'xml'"):
        parse_source(SAMPLE, fmt="xml")


# --- round-trip property --------------------------------------------------------------------------

_NO = "\ufeff"  # a leading BOM is dropped on purpose, so it cannot be part of generated text
_name_word = st.text(
    alphabet=st.one_of(st.characters(categories=("L", "N"), exclude_characters=_NO), st.sampled_from(".-_'")),
    min_size=1,
    max_size=8,
)
_names = st.lists(_name_word, min_size=1, max_size=3).map(" ".join)


def _is_plain_line(line: str) -> bool:
    # What the format cannot carry as text: a line that looks like a header or a footer.
    return bool(line) and not line.endswith("Permalink") and not line.startswith("In reply to by")


# Characters that naive line splitting or str.strip() would mangle get a fair chance to appear.
_TRICKY = ["\u00a0", "\u2028", "\u2029", "\x85", "\u3000", "\u200b"]
_line = (
    st.text(
        alphabet=st.one_of(
            st.characters(exclude_categories=("Cc", "Cs"), exclude_characters=_NO), st.sampled_from(_TRICKY)
        ),
        max_size=30,
    )
    .map(lambda s: s.strip(" "))
    .filter(_is_plain_line)
)
_paragraph = st.lists(_line, min_size=1, max_size=3).map("\n".join)
_body = st.lists(_paragraph, max_size=3).map("\n\n".join)
_minutes = st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2030, 12, 31)).map(
    lambda d: d.replace(second=0, microsecond=0)
)
_DAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")


@dataclass(frozen=True)
class GenComment:
    author: str
    parent: str | None
    local: datetime
    body: str


@st.composite
def _dumps(draw: st.DrawFn) -> tuple[str, str, list[GenComment]]:
    title = draw(_line.filter(lambda s: not s.startswith(("{", "["))))
    article = draw(_body)
    pool = draw(st.lists(_names, min_size=1, max_size=4))
    people = st.sampled_from(pool)
    comments = draw(
        st.lists(
            st.builds(
                GenComment,
                author=people,
                parent=st.one_of(st.none(), people, _names),
                local=st.one_of(_minutes, st.sampled_from([datetime(2018, 3, 20, 12, 0)])),
                body=_body,
            ),
            max_size=8,
        )
    )
    return title, article, comments


def render(title: str, article: str, comments: list[GenComment]) -> str:
    out = [title, "", article, "", ""]
    for c in comments:
        names = c.author if c.parent is None else f"{c.author} {c.parent}"
        stamp = c.local.strftime("%m/%d/%Y - %H:%M")
        out += [f"{names} {_DAYS[c.local.weekday()]}, {stamp} Permalink", "", c.body, ""]
        if c.parent is not None:
            out += [f"In reply to by {c.parent}", ""]
    return "\n".join(out)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_dumps())
def test_render_parse_round_trip(dump: tuple[str, str, list[GenComment]]) -> None:
    title, article, comments = dump
    parsed = parse(render(title, article, comments))
    assert (parsed.title, parsed.article) == (title, article)
    assert parsed.warnings == [] or all("duplicate" in w for w in parsed.warnings)
    got = [(c.author, c.parent_author, c.posted_at, c.body) for c in parsed.comments]
    assert got == [(c.author, c.parent, c.local.replace(tzinfo=UTC), c.body) for c in comments]

    ids = [c.comment_id for c in parsed.comments]
    assert len(set(ids)) == len(ids)
    by_id = {c.comment_id: c for c in parsed.comments}
    for c in parsed.comments:
        assert msgspec.json.decode(msgspec.json.encode(c), type=CommentEvent) == c
        if c.parent_id is not None:
            parent = by_id[c.parent_id]
            assert parent.author == c.parent_author
            assert parent.posted_at <= c.posted_at
            assert parent.comment_id != c.comment_id
        elif c.parent_author is not None:
            assert not any(o.author == c.parent_author and o.posted_at < c.posted_at for o in parsed.comments)
    # Parent links never form a cycle.
    for c in parsed.comments:
        seen: set[str] = set()
        node: CommentEvent | None = c
        while node is not None and node.parent_id is not None:
            assert node.comment_id not in seen
            seen.add(node.comment_id)
            node = by_id[node.parent_id]
    assert parse(render(title, article, comments)).comments == parsed.comments
