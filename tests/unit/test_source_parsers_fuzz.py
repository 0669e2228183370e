"""Property tests: arbitrary and near-valid bytes into every source parser (registry.FORMATS).

For every format the registry knows, hypothesis writes bytes to a file and reads it with
`parse_source` the way the CLI does. The properties:

- opening raises nothing but what the CLI reports as "cannot read this file" (SourceError,
  ThreadDumpError), iterating nothing but SourceParseError (the export as a whole is unreadable);
- every item is either good (a key and bytes that `ingest.validate` turns into an event or a
  rejection, never an internal error) or bad with a non-empty reason (a dead letter, not a crash);
- a well-formed container (a valid JSON document, XML tree, CSV file or JSON lines) never raises,
  and gives exactly one item per record in it, whatever the records' fields hold: nothing vanishes.

Strategies per format mix st.binary, well-formed skeletons with mutated fields (wrong types,
missing keys, nasty strings, deep nesting), byte-level damage of those (truncation, invalid UTF-8,
NUL bytes) and zstd-compressed (whole and truncated) variants.
"""

from __future__ import annotations

import csv
import io
import json
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape, quoteattr

import msgspec
import pytest
import zstandard
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from streams.ingest import Rejection, validate
from streams.models import CommentEvent
from streams.sources.common import SourceParseError, html_to_text
from streams.sources.csvsource import FIELDS
from streams.sources.registry import EXPORT_FORMATS, FORMATS, SourceError, SourceItem, parse_source
from streams.sources.threaddump import ThreadDumpError


@dataclass(frozen=True)
class Case:
    """Bytes for one file; `records`: how many records a well-formed container holds (None: unknown)."""

    data: bytes
    records: int | None = None
    suffix: str = ".dat"


# -- values -------------------------------------------------------------------------------------

NASTY = [
    "",
    " ",
    "\t\n",
    "0",
    "-1",
    "1e308",
    "NaN",
    "inf",
    "²",
    "١٢",
    "9" * 5000,
    "x" * 600,
    "t1_",
    "t3_",
    "root",
    "anonymous",
    "[deleted]",
    "[removed]",
    "true",
    "0000-00-00 00:00:00",
    "2019-13-45 25:61:61",
    "2019-01-02 13:00:00",
    "2020-02-30T00:00:00Z",
    "9999-12-31T23:59:59Z",
    "0001-01-01T00:00:00+14:00",
    "2020-01-01T00:00:00",
    "2020-01-01T00:00:00zz",
    "<![foo[bar]]>",
    "<![CDATA[x]]>",
    "<!x y>",
    "<!--",
    "<p>a<p>b</p>",
    "<pre>  code\n  more</pre>",
    "<script>alert(1)</script>",
    "&#0;&#xD800;&#x110000;&amp;&bogus;",
    "\u2028\u00a0\ufeff",
    "\U0001f600",
    "a\x00b",
]
#: Pieces of HTML that trip parsers: marked sections, declarations, unclosed tags, char refs.
MARKUP = [
    "<p>",
    "</p>",
    "<br>",
    "<pre>",
    "</pre>",
    "<script>",
    "<b a='x",
    "<![",
    "<![foo[",
    "<![if !IE]>",
    "<![CDATA[",
    "]]>",
    "<!",
    "<!--",
    "-->",
    "<!DOCTYPE x [",
    "<?php ",
    "</",
    "&#",
    "&#x",
    "&#xD800;",
    "&amp",
    ">",
    "<",
    " ",
    "\n",
    "x",
]
markup = st.lists(st.sampled_from(MARKUP) | st.text(max_size=3), min_size=1, max_size=8).map("".join)
_text = st.one_of(st.sampled_from(NASTY), markup, st.text(max_size=40))
_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**63), max_value=2**64 - 1),
    st.floats(allow_nan=False, allow_infinity=False),
    _text,
)
#: Any JSON value orjson reads (numbers in range, no NaN), nested a little.
json_values = st.recursive(
    _scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(_text, inner, max_size=3),
    max_leaves=8,
)


def nested(depth: int) -> Any:
    """A list nested `depth` deep (orjson reads up to 1024 levels, writes only 254)."""
    value: Any = []
    for _ in range(depth):
        value = [value]
    return value


_deep = st.integers(min_value=200, max_value=900).map(nested)
_field_value = st.one_of(json_values, json_values, _deep)


@st.composite
def mutated(draw: st.DrawFn, template: dict[str, Any]) -> dict[str, Any]:
    """`template` with some fields kept, some dropped, some replaced by any JSON value; extra keys."""
    obj: dict[str, Any] = {}
    for key, value in template.items():
        choice = draw(st.integers(0, 9))
        if choice < 6:
            obj[key] = value
        elif choice == 6:
            continue
        else:
            obj[key] = draw(_field_value)
    obj.update(draw(st.dictionaries(_text, json_values, max_size=2)))
    return obj


def dumps(value: Any) -> bytes:
    return json.dumps(value, ensure_ascii=False).encode("utf-8", "surrogatepass")


def one_line(value: Any) -> bytes:
    return dumps(value).replace(b"\n", b"\\n")  # json.dumps never emits raw newlines; belt and braces


# -- byte damage --------------------------------------------------------------------------------

BAD_BYTES = [
    b"\xff",
    b"\xc3",
    b"\x00",
    b"\x00\x00\x00\x00",
    b"\xed\xa0\x80",
    b"\xef\xbb\xbf",
    b"\xff\xfe",
    b"\r",
    b"\n",
    b'"',
    b"\\",
    b"<",
    b"]]>",
    b"\\ud800",
    b"&#0;",
    b",",
    b"\r\n\r\n",
]


@st.composite
def damaged(draw: st.DrawFn, base: st.SearchStrategy[Case]) -> Case:
    """`base` truncated, with bad bytes inserted, bytes flipped or ranges repeated."""
    case = draw(base)
    data = bytearray(case.data)
    for _ in range(draw(st.integers(1, 4))):
        op = draw(st.sampled_from(["truncate", "insert", "insert", "flip", "repeat"]))
        pos = draw(st.integers(0, len(data)))
        if op == "truncate":
            del data[pos:]
        elif op == "insert":
            data[pos:pos] = draw(st.sampled_from(BAD_BYTES) | st.binary(min_size=1, max_size=8))
        elif op == "flip" and pos < len(data):
            data[pos] ^= draw(st.integers(1, 255))
        elif op == "repeat":
            end = draw(st.integers(pos, min(len(data), pos + 200)))
            data[pos:pos] = data[pos:end]
    return Case(bytes(data), None, case.suffix)


def compressed(base: st.SearchStrategy[Case]) -> st.SearchStrategy[Case]:
    """`base` as a zstd frame: whole (the records survive) or cut short (a damaged dump)."""

    def whole(case: Case) -> Case:
        return Case(zstandard.ZstdCompressor().compress(case.data), case.records, case.suffix)

    @st.composite
    def cut(draw: st.DrawFn) -> Case:
        frame = whole(draw(base)).data
        return Case(frame[: draw(st.integers(0, max(0, len(frame) - 1)))], None, ".zst")

    return st.one_of(base.map(whole), cut())


def family(well_formed: st.SearchStrategy[Case], suffix: str) -> st.SearchStrategy[Case]:
    """Arbitrary bytes, the well-formed skeletons, their damaged and compressed forms."""
    return st.one_of(
        st.binary(max_size=2048).map(lambda b: Case(b, None, suffix)),
        well_formed,
        well_formed,
        damaged(well_formed),
        compressed(well_formed),
    )


# -- JSON lines formats -------------------------------------------------------------------------


def _lines_file(records: list[bytes], suffix: str) -> st.SearchStrategy[Case]:
    @st.composite
    def build(draw: st.DrawFn) -> Case:
        out = bytearray(b"\xef\xbb\xbf" if draw(st.booleans()) else b"")
        for line in records:
            if draw(st.integers(0, 9)) == 0:
                out += b"   \n"  # blank lines are skipped, not records
            out += line + draw(st.sampled_from([b"\n", b"\r\n"]))
        return Case(bytes(out), len(records), suffix)

    return build()


EVENT = {
    "schema_version": 2,
    "event_id": "e-1",
    "source": "test",
    "thread_id": "t1",
    "comment_id": "c1",
    "parent_id": None,
    "author": "ann",
    "posted_at": "2018-03-20T13:30:00+00:00",
    "edited_at": None,
    "body": "hello",
    "source_state": "visible",
}


@st.composite
def jsonl_cases(draw: st.DrawFn) -> Case:
    lines = draw(st.lists(mutated(EVENT).map(one_line) | json_values.map(one_line), min_size=1, max_size=6))
    return draw(_lines_file(lines, ".jsonl"))


REDDIT_COMMENT = {
    "id": "c1",
    "name": "t1_c1",
    "link_id": "t3_s1",
    "parent_id": "t1_c0",
    "author": "ann",
    "body": "hi &amp; bye",
    "created_utc": 1600000000,
    "edited": 1600000100,
    "permalink": "/r/x/comments/s1/t/c1/",
    "subreddit": "x",
    "spam": False,
}
REDDIT_SUBMISSION = {
    "id": "s1",
    "title": "A &lt;title&gt;",
    "selftext": "[removed]",
    "author": "bob",
    "created_utc": "1600000000.5",
    "removed_by_category": "moderator",
    "subreddit": "x",
}


@st.composite
def reddit_cases(draw: st.DrawFn) -> Case:
    record = mutated(REDDIT_COMMENT) | mutated(REDDIT_SUBMISSION)
    lines = draw(st.lists(record.map(one_line) | json_values.map(one_line), min_size=1, max_size=6))
    return draw(_lines_file(lines, ".ndjson"))


HN_STORY = {
    "id": 1,
    "type": "story",
    "by": "pg",
    "time": 1160418111,
    "title": "T &amp; U",
    "url": "http://x/",
    "kids": [2],
}
HN_COMMENT = {"id": 2, "type": "comment", "by": "ann", "parent": 1, "time": 1160418200, "text": "a<p>b", "dead": True}
HN_HIT = {
    "objectID": "3",
    "comment_text": "<i>x</i>",
    "story_id": 1,
    "parent_id": 2,
    "created_at_i": 1160418300,
    "created_at": "2006-10-09T18:25:00.000Z",
    "author": "zed",
    "story_title": "T",
    "_tags": ["comment"],
}


@st.composite
def hackernews_cases(draw: st.DrawFn) -> Case:
    item = mutated(HN_STORY) | mutated(HN_COMMENT) | mutated(HN_HIT) | json_values
    shape = draw(st.sampled_from(["lines", "lines", "pretty"]))
    if shape == "pretty":  # a pretty-printed JSON array: one document, one record per element
        items = draw(st.lists(item, min_size=1, max_size=5))
        return Case(json.dumps(items, indent=2, ensure_ascii=False).encode(), len(items), ".json")
    lines: list[bytes] = []
    count = 0
    for _ in range(draw(st.integers(1, 5))):
        kind = draw(st.sampled_from(["one", "one", "array", "hits"]))
        if kind == "one":
            value: Any = draw(item.filter(lambda v: not isinstance(v, list)))
            count += 1
        else:
            records = draw(st.lists(item, max_size=3))
            value = records if kind == "array" else {"hits": records, "nbHits": len(records)}
            count += len(records)
        lines.append(one_line(value))
    if lines[0].lstrip().startswith(b"["):
        lines[0] = lines[0].rstrip() + b"  "  # still ends in "]": read as one line
    case = draw(_lines_file(lines, ".ndjson"))
    return Case(case.data, count, case.suffix)


# -- whole-document JSON formats ------------------------------------------------------------------

DISCOURSE_POST = {
    "id": 10,
    "topic_id": 5,
    "post_number": 2,
    "reply_to_post_number": 1,
    "created_at": "2020-01-01T00:00:00.000Z",
    "updated_at": "2020-01-02T00:00:00.000Z",
    "last_edited_at": "2020-01-02T00:00:00.000Z",
    "version": 2,
    "post_type": 1,
    "username": "ann",
    "name": "Ann",
    "cooked": "<p>hello</p>",
    "hidden": False,
    "deleted_at": None,
    "user_deleted": False,
}
DISCOURSE_TOPIC = {"id": 5, "title": "A topic", "slug": "a-topic"}


@st.composite
def discourse_cases(draw: st.DrawFn) -> Case:
    posts = draw(st.lists(mutated(DISCOURSE_POST) | _field_value, max_size=5))
    doc = draw(mutated(DISCOURSE_TOPIC))
    doc["post_stream"] = {"posts": posts, "stream": draw(_field_value)}
    return Case(dumps(doc), len(posts), ".json")


COMMENTO_COMMENT = {
    "commentHex": "a1",
    "commenterHex": "c1",
    "parentHex": "root",
    "domain": "example.org",
    "url": "/post",
    "markdown": "hi",
    "html": "<p>hi</p>",
    "state": "approved",
    "deleted": False,
    "creationDate": "2020-01-01T00:00:00Z",
}


@st.composite
def commento_cases(draw: st.DrawFn) -> Case:
    comments = draw(st.lists(mutated(COMMENTO_COMMENT) | _field_value, max_size=5))
    commenters = draw(
        st.lists(mutated({"commenterHex": "c1", "name": "Carol"}) | json_values, max_size=3) | _field_value
    )
    doc = {"version": 1, "comments": comments, "commenters": commenters}
    return Case(dumps(doc), len(comments), ".json")


MASTODON_STATUS = {
    "id": "109",
    "created_at": "2022-11-01T10:00:00.000Z",
    "in_reply_to_id": "108",
    "in_reply_to_account_id": "7",
    "account": {"acct": "alice", "username": "alice"},
    "content": "<p>hi <a href='x'>@bob</a></p>",
    "spoiler_text": "cw",
    "url": "https://m.example/@alice/109",
    "uri": "https://m.example/users/alice/statuses/109",
    "edited_at": None,
}


@st.composite
def mastodon_cases(draw: st.DrawFn) -> Case:
    status = mutated(MASTODON_STATUS) | _field_value
    shape = draw(st.sampled_from(["context", "list", "one"]))
    if shape == "one":
        one = draw(mutated(MASTODON_STATUS))
        one.setdefault("id", "1")
        one.setdefault("content", "")
        return Case(dumps(one), 1, ".json")
    if shape == "list":
        statuses = draw(st.lists(status, max_size=5))
        return Case(dumps(statuses), len(statuses), ".json")
    ancestors, descendants = draw(st.lists(status, max_size=3)), draw(st.lists(status, max_size=3))
    return Case(dumps({"ancestors": ancestors, "descendants": descendants}), len(ancestors) + len(descendants), ".json")


# -- XML formats --------------------------------------------------------------------------------


def xml_chars(text: str) -> str:
    """`text` without what XML 1.0 forbids (C0 controls but tab/LF/CR, surrogates, U+FFFE/U+FFFF)."""
    return "".join(
        c for c in text if c in "\t\n\r" or "\x20" <= c <= "\ud7ff" or "\ue000" <= c <= "\ufffd" or c >= "\U00010000"
    )


_xml_text = st.one_of(st.sampled_from(NASTY), markup, st.text(max_size=30)).map(xml_chars)


def _deep_xml(depth: int) -> str:
    return "<x>" * depth + "</x>" * depth


_xml_extra = st.one_of(st.just(""), st.integers(1, 1500).map(_deep_xml))


@st.composite
def _xml_field(draw: st.DrawFn, name: str, default: str) -> str:
    """`<name>default</name>`, or with another text, or empty, or absent."""
    choice = draw(st.integers(0, 9))
    if choice == 0:
        return ""
    if choice == 1:
        return f"<{name}/>"
    text = default if choice < 6 else draw(_xml_text)
    return f"<{name}>{escape(text)}</{name}>"


@st.composite
def _dsq_id(draw: st.DrawFn, default: str) -> str:
    choice = draw(st.integers(0, 9))
    if choice == 0:
        return ""
    return f" dsq:id={quoteattr(default if choice < 7 else draw(_xml_text))}"


@st.composite
def disqus_cases(draw: st.DrawFn) -> Case:
    parts = ['<?xml version="1.0" encoding="utf-8"?>\n']
    parts.append('<disqus xmlns="http://disqus.com" xmlns:dsq="http://disqus.com/disqus-internals">\n')
    for i in range(draw(st.integers(0, 2))):
        link = draw(_xml_field("link", "https://example.org/t"))
        title = draw(_xml_field("title", "Title"))
        parts.append(f"<thread{draw(_dsq_id(f'T{i}'))}>{link}{title}</thread>\n")
    posts = draw(st.integers(0, 4))
    for i in range(posts):
        fields = [
            draw(_xml_field("message", "<p>hi &amp; <b>there</b></p>")),
            draw(_xml_field("createdAt", "2020-01-01T00:00:00Z")),
            draw(_xml_field("isDeleted", "false")),
            draw(_xml_field("isSpam", "false")),
            f"<author>{draw(_xml_field('name', 'Ann'))}{draw(_xml_field('username', 'ann'))}</author>",
            f"<thread{draw(_dsq_id('T0'))}/>",
            f"<parent{draw(_dsq_id(f'P{i - 1}'))}/>" if draw(st.booleans()) else "",
            draw(_xml_extra),
        ]
        parts.append(f"<post{draw(_dsq_id(f'P{i}'))}>{''.join(draw(st.permutations(fields)))}</post>\n")
    parts.append("</disqus>\n")
    return Case("".join(parts).encode(), posts, ".xml")


@st.composite
def wordpress_cases(draw: st.DrawFn) -> Case:
    undeclared = draw(st.booleans())  # some exports use a prefix they never declare
    parts = [
        '<?xml version="1.0" encoding="UTF-8" ?>\n<rss version="2.0" xmlns:wp="http://wordpress.org/export/1.2/">',
        "<channel>",
        draw(_xml_field("link", "https://blog.example.org")),
        draw(_xml_field("wp:base_site_url", "https://blog.example.org")),
    ]
    comments = 0
    for i in range(draw(st.integers(0, 3))):
        parts.append("<item>")
        parts.append(draw(_xml_field("title", "Hello &amp; welcome")))
        parts.append(draw(_xml_field("link", f"https://blog.example.org/{i}/")))
        parts.append(draw(_xml_field("wp:post_id", str(40 + i))))
        if undeclared:
            parts.append("<dc:creator>admin</dc:creator>")
        for j in range(draw(st.integers(0, 3))):
            comments += 1
            fields = [
                draw(_xml_field("wp:comment_id", f"{i}{j}")),
                draw(_xml_field("wp:comment_author", "Grace")),
                draw(_xml_field("wp:comment_date", "2019-01-02 13:00:00")),
                draw(_xml_field("wp:comment_date_gmt", "2019-01-02 12:00:00")),
                draw(_xml_field("wp:comment_content", "Lovely <b>post</b> & more")),
                draw(_xml_field("wp:comment_approved", "1")),
                draw(_xml_field("wp:comment_type", "comment")),
                draw(_xml_field("wp:comment_parent", "0")),
                draw(_xml_extra),
            ]
            parts.append(f"<wp:comment>{''.join(draw(st.permutations(fields)))}</wp:comment>")
        parts.append("</item>")
    parts.append("</channel></rss>\n")
    return Case("\n".join(parts).encode(), comments, ".xml")


# -- CSV ----------------------------------------------------------------------------------------

_cell = st.one_of(
    st.sampled_from([s for s in NASTY if "\x00" not in s]),
    st.text(st.characters(blacklist_characters="\x00", blacklist_categories=("Cs",)), max_size=20),
)


@st.composite
def csv_cases(draw: st.DrawFn) -> Case:
    optional = draw(st.lists(st.sampled_from(FIELDS[3:]), unique=True, max_size=5))
    header = draw(st.permutations(["body", "author", "posted_at", *optional, *draw(st.lists(_cell, max_size=2))]))
    rows: list[list[str]] = []
    for _ in range(draw(st.integers(0, 5))):
        row = [draw(_cell) for _ in header]
        if "posted_at" in header and draw(st.booleans()):
            row[header.index("posted_at")] = draw(st.sampled_from(["2020-01-01T00:00:00Z", "1600000000", "2020-01-01"]))
        cut = draw(st.integers(-2, 2))  # short and long rows
        row = row[: len(row) + cut] if cut < 0 else row + [draw(_cell) for _ in range(cut)]
        rows.append(row)
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(header)
    writer.writerows(rows)
    records = sum(1 for row in rows if any(cell.strip() for cell in row))
    return Case(out.getvalue().encode(), records, ".csv")


# -- thread dumps -------------------------------------------------------------------------------

_DAYS = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun", "Xyz"]


@st.composite
def threaddump_cases(draw: st.DrawFn) -> Case:
    name = st.sampled_from(["Ann", "Bob Smith", "Zoë", "a b c", "x" * 600]) | _xml_text
    lines = [draw(_xml_text), "", draw(_xml_text), ""]
    for _ in range(draw(st.integers(0, 5))):
        day, month, dom = draw(st.sampled_from(_DAYS)), draw(st.integers(0, 13)), draw(st.integers(0, 32))
        year, hour, minute = draw(st.integers(1000, 9999)), draw(st.integers(0, 25)), draw(st.integers(0, 61))
        header = f"{draw(name)} {day}, {month:02}/{dom:02}/{year} - {hour:02}:{minute:02} Permalink"
        cut = draw(st.integers(0, 4))  # sometimes a truncated header
        lines += [header if cut else header[: draw(st.integers(0, len(header)))], "", draw(_xml_text), ""]
        if draw(st.booleans()):
            lines += [f"In reply to by {draw(name)}", ""]
    return Case("\n".join(lines).encode("utf-8", "surrogatepass"), None, ".txt")


# -- the registry's formats ---------------------------------------------------------------------

_EXPORTS: dict[str, st.SearchStrategy[Case]] = {
    "threaddump": threaddump_cases(),
    "jsonl": jsonl_cases(),
    "reddit": reddit_cases(),
    "hackernews": hackernews_cases(),
    "disqus": disqus_cases(),
    "wordpress": wordpress_cases(),
    "discourse": discourse_cases(),
    "commento": commento_cases(),
    "mastodon": mastodon_cases(),
    "csv": csv_cases(),
}
_SUFFIXES = {
    "threaddump": ".txt",
    "jsonl": ".jsonl",
    "reddit": ".ndjson",
    "hackernews": ".ndjson",
    "disqus": ".xml",
    "wordpress": ".xml",
    "discourse": ".json",
    "commento": ".json",
    "mastodon": ".json",
    "csv": ".csv",
}


@st.composite
def auto_cases(draw: st.DrawFn) -> Case:
    """Any format's input under `--format auto` (detection may pick another format: no count)."""
    case = draw(st.sampled_from(sorted(_EXPORTS)).flatmap(lambda fmt: family(_EXPORTS[fmt], _SUFFIXES[fmt])))
    suffix = draw(st.sampled_from([case.suffix, ".txt", ".csv", ".jsonl", ".json", ".xml", ""]))
    return Case(case.data, None, suffix)


STRATEGIES: dict[str, st.SearchStrategy[Case]] = {
    "auto": auto_cases(),
    **{fmt: family(strategy, _SUFFIXES[fmt]) for fmt, strategy in _EXPORTS.items()},
}

#: What opening a source may raise: the CLI prints these as "cannot read FILE: ..." (cli._open_source).
OPEN_ERRORS = (SourceError, ThreadDumpError)


@pytest.fixture(scope="module")
def workdir() -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix="parser-fuzz-") as name:
        yield Path(name)


def read_all(path: Path, fmt: str) -> tuple[list[SourceItem], BaseException | None]:
    """The items of `path` as the CLI reads them, and the documented error that stopped them, if any."""
    try:
        result = parse_source(path, fmt)
    except OPEN_ERRORS as exc:
        assert str(exc).strip()
        return [], exc
    items: list[SourceItem] = []
    try:
        items.extend(result)
    except SourceParseError as exc:
        assert str(exc).strip()
        return items, exc
    assert result.count == len(items)
    assert result.bad_count == sum(item.bad for item in items)
    return items, None


def check_item(item: SourceItem) -> None:
    assert isinstance(item, SourceItem)
    assert isinstance(item.value, bytes)
    if item.bad:
        assert isinstance(item.reason, str) and item.reason.strip(), item
        return
    assert isinstance(item.key, str) and item.key, item
    verdict = validate(item.value)
    assert isinstance(verdict, CommentEvent | Rejection)
    if isinstance(verdict, Rejection):
        assert verdict.reason_code != "internal", verdict.reason


def check_case(directory: Path, fmt: str, case: Case) -> None:
    path = directory / f"input-{fmt}{case.suffix}"
    path.write_bytes(case.data)
    items, error = read_all(path, fmt)
    for item in items:
        check_item(item)
    if case.records is not None:
        # A well-formed container: its records' contents are arbitrary, but it is readable, and
        # every record comes back as one item, good or bad.
        assert error is None or isinstance(error, SourceError), error  # SourceError: a UTF-16 lookalike head
        if error is None:
            assert len(items) == case.records, [i.reason or i.value[:80] for i in items]


def test_every_registered_format_has_a_strategy() -> None:
    assert set(STRATEGIES) == set(FORMATS)
    assert set(EXPORT_FORMATS) <= set(STRATEGIES)


#: No "explain" phase: tracing a failing example of deep nesting once took this file to gigabytes.
PHASES = [Phase.explicit, Phase.reuse, Phase.generate, Phase.target, Phase.shrink]


@pytest.mark.parametrize("fmt", FORMATS)
@settings(
    max_examples=150,
    deadline=None,
    phases=PHASES,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.function_scoped_fixture],
)
@given(data=st.data())
def test_any_bytes_give_items_or_a_documented_error(workdir: Path, fmt: str, data: st.DataObject) -> None:
    strategy = STRATEGIES.get(fmt)
    assert strategy is not None, f"format {fmt!r} is registered but has no fuzz strategy here"
    check_case(workdir, fmt, data.draw(strategy, label=fmt))


# -- one bad record costs only that record ---------------------------------------------------------


@st.composite
def one_line_not_utf8(draw: st.DrawFn) -> tuple[str, bytes, int, int]:
    """(format, file, records, the 1-based record with bytes that are not UTF-8) for line formats."""
    fmt = draw(st.sampled_from(["jsonl", "reddit", "csv"]))
    count = draw(st.integers(1, 600))  # enough rows to span several of a text reader's 8 KiB chunks
    bad = draw(st.integers(1, count))
    junk = draw(st.sampled_from([b"\xff", b"\xc3(", b"\xed\xa0\x80", b"\x80\x80"]))
    if fmt == "csv":
        rows = [b"row %d,ann,2020-01-01T00:00:00Z" % i for i in range(1, count + 1)]
        rows[bad - 1] = b"row " + junk + b",ann,2020-01-01T00:00:00Z"
        return fmt, b"body,author,posted_at\n" + b"\n".join(rows) + b"\n", count, bad
    template = EVENT if fmt == "jsonl" else REDDIT_COMMENT
    lines = [one_line({**template, "id": f"c{i}", "comment_id": f"c{i}"}) for i in range(1, count + 1)]
    lines[bad - 1] = lines[bad - 1].replace(b'"ann"', b'"a' + junk + b'"')
    return fmt, b"\n".join(lines) + b"\n", count, bad


@settings(max_examples=30, deadline=None, phases=PHASES, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(case=one_line_not_utf8())
def test_bytes_that_are_not_utf8_cost_their_record_only(workdir: Path, case: tuple[str, bytes, int, int]) -> None:
    fmt, data, count, bad = case
    path = workdir / f"one-bad.{fmt}"
    path.write_bytes(data)
    items, error = read_all(path, fmt)
    assert error is None
    assert len(items) == count
    assert [n for n, item in enumerate(items, start=1) if item.bad] == [bad]
    line = bad + 1 if fmt == "csv" else bad
    flagged = items[bad - 1]
    assert f"line {line}" in (flagged.reason or "") or flagged.origin.endswith(f":{line}"), flagged
    assert items[bad - 1].value in data


# -- regressions the properties found --------------------------------------------------------------


def _items(tmp_path: Path, fmt: str, data: bytes, suffix: str = ".json") -> list[SourceItem]:
    path = tmp_path / f"input{suffix}"
    path.write_bytes(data)
    return list(parse_source(path, fmt))


@pytest.mark.parametrize(
    ("fmt", "data", "suffix"),
    [
        ("discourse", b'{"id": 5, "post_stream": {"posts": [' + b"[" * 300 + b"]" * 300 + b"]}}", ".json"),
        ("commento", b'{"comments": [' + b"[" * 300 + b"]" * 300 + b"], " + b'"commenters": []}', ".json"),
        ("mastodon", b"[" + b"[" * 300 + b"]" * 300 + b"]", ".json"),
        ("hackernews", b"[" + b"[" * 300 + b"]" * 300 + b"]\n", ".ndjson"),
        ("hackernews", b'{"hits": [' + b"[" * 300 + b"]" * 300 + b"]}\n", ".ndjson"),
        ("hackernews", b"[\n" + b"[" * 300 + b"]" * 300 + b"\n]\n", ".json"),
    ],
)
def test_a_record_nested_deeper_than_orjson_writes_is_a_bad_record(
    tmp_path: Path, fmt: str, data: bytes, suffix: str
) -> None:
    # orjson reads 1024 levels but writes only 254: re-encoding the record for its dead letter raised
    # "TypeError: Recursion limit reached" and stopped the feed.
    (item,) = _items(tmp_path, fmt, data, suffix)
    assert item.bad and item.reason
    assert item.value == b"[" * 300 + b"]" * 300


def test_a_deeply_nested_field_does_not_spoil_a_good_post(tmp_path: Path) -> None:
    post = {"topic_id": 5, "post_number": 1, "created_at": "2020-01-01T00:00:00Z", "username": "ann", "x": nested(400)}
    (item,) = _items(tmp_path, "discourse", dumps({"id": 5, "post_stream": {"posts": [post]}}))
    assert not item.bad and item.key == "discourse:5"


@pytest.mark.parametrize("commenters", [b"true", b"5", b"1.5"])
def test_commento_commenters_that_are_not_a_list_warn(tmp_path: Path, commenters: bytes) -> None:
    # `doc.get("commenters") or []` iterated a bool or a number: TypeError outside the per-record guard.
    comment = b'{"commentHex": "a1", "commenterHex": "c1", "creationDate": "2020-01-01T00:00:00Z", "markdown": "hi"}'
    path = tmp_path / "commento.json"
    path.write_bytes(b'{"comments": [' + comment + b'], "commenters": ' + commenters + b"}")
    result = parse_source(path, "commento")
    (item,) = list(result)
    assert not item.bad
    assert any("'commenters' is not a list" in w for w in result.warnings)


@pytest.mark.parametrize("account", [b"[]", b'["alice"]', b'"alice"', b"5", b"true"])
def test_mastodon_account_that_is_not_an_object_is_no_crash(tmp_path: Path, account: bytes) -> None:
    # `(status.get("account") or {}).get(...)` raised AttributeError for a list or a string.
    status = b'{"id": "1", "created_at": "2022-11-01T10:00:00Z", "content": "<p>hi</p>", "account": ' + account + b"}"
    (item,) = _items(tmp_path, "mastodon", b"[" + status + b"]")
    assert not item.bad
    assert msgspec.json.decode(item.value, type=CommentEvent).author == "[deleted]"


@pytest.mark.parametrize(
    ("markup", "text"),
    [
        ("<p>a</p><![foo[bar]]><p>b</p>", "a\n\nb"),
        ("x <![0 y", "x <![0 y"),
        ("<![if !IE]>ok", "ok"),
        ("a<![A[b>c", "ac"),
    ],
)
def test_html_with_an_unknown_marked_section_is_text(markup: str, text: str) -> None:
    # CPython's HTMLParser raises AssertionError ("unknown status keyword 'foo' in marked section",
    # "expected name token at '<![0'"): it escaped every parser that turns HTML into text.
    assert html_to_text(markup) == text


@pytest.mark.parametrize(
    ("fmt", "data", "suffix"),
    [
        (
            "hackernews",
            b'{"id": 2, "type": "comment", "by": "a", "parent": 1, "time": 1, "text": "<![foo["}\n',
            ".ndjson",
        ),
        ("mastodon", b'[{"id": "1", "created_at": "2022-11-01T10:00:00Z", "content": "<![A[x]]>y"}]', ".json"),
        (
            "disqus",
            b'<disqus xmlns:dsq="d"><post dsq:id="1"><createdAt>2020-01-01T00:00:00Z</createdAt>'
            b"<message>&lt;![foo[</message></post></disqus>",
            ".xml",
        ),
    ],
)
def test_a_body_with_an_unknown_marked_section_lands(tmp_path: Path, fmt: str, data: bytes, suffix: str) -> None:
    (item,) = _items(tmp_path, fmt, data, suffix)
    assert not item.bad


def test_csv_row_that_is_not_utf8_is_one_bad_row(tmp_path: Path) -> None:
    # The strict text reader failed on the whole 8 KiB chunk around a bad byte: for a small file the
    # whole file ("cannot read the CSV header", though line 1 was fine), for a big one a single bad
    # record with no bytes and a wrong line number while the chunk's other rows silently vanished.
    rows = [b"row %d,ann,2020-01-01T00:00:00Z" % i for i in range(3000)]
    rows[1500] = b"bad \xff byte,bob,2020-01-01T00:00:00Z"
    path = tmp_path / "comments.csv"
    path.write_bytes(b"body,author,posted_at\n" + b"\n".join(rows) + b"\n")
    items = list(parse_source(path, "csv"))
    assert len(items) == 3000
    (bad,) = [i for i in items if i.bad]
    assert bad.reason == "line 1502: not UTF-8 text"
    assert bad.value == b"bad \xff byte,bob,2020-01-01T00:00:00Z"
    small = tmp_path / "small.csv"
    small.write_bytes(b"body,author,posted_at\nok,ann,2020-01-01T00:00:00Z\n\xff,bob,2020-01-01T00:00:00Z\n")
    assert [i.bad for i in parse_source(small, "csv")] == [False, True]


def test_csv_header_that_is_not_utf8_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "comments.csv"
    path.write_bytes(b"body,auth\xffor,posted_at\nok,ann,2020-01-01T00:00:00Z\n")
    with pytest.raises(SourceParseError, match="line 1: the CSV header is not UTF-8"):
        list(parse_source(path, "csv"))


def test_an_xml_declaration_with_an_unknown_encoding_is_a_parse_error(tmp_path: Path) -> None:
    """Found by the property above: encoding="TTF-8" raised LookupError from expat."""
    path = tmp_path / "export.xml"
    path.write_bytes(b'<?xml version="1.0" encoding="TTF-8"?><rss><channel></channel></rss>')
    with pytest.raises(SourceParseError, match="unknown character encoding"):
        list(parse_source(path, "wordpress"))


def test_undeclared_prefix_found_after_a_lone_carriage_return(tmp_path: Path) -> None:
    """expat counts a lone \\r as a line break: the undeclared prefix is looked for on its line."""
    path = tmp_path / "export.xml"
    path.write_bytes(
        b'<?xml version="1.0" encoding="UTF-8" ?>\n<rss version="2.0" xmlns:wp="http://wordpress.org/export/1.2/">\n'
        b"<channel>\n<item>\n<wp:post_id>\r</wp:post_id>\n<dc:creator>admin</dc:creator>\n</item>\n</channel></rss>\n"
    )
    items, error = read_all(path, "wordpress")
    assert error is None and items == []
