"""Pick a parser for an input file and turn its output into (key, value) items ready to produce.

`--format auto` goes by content (`detect`: XML root, the first JSON record's keys, a CSV header),
then by extension (.jsonl/.ndjson/.json -> jsonl, .csv -> csv), else threaddump; the CLI says on
stderr what it chose and why. Export formats (reddit, hackernews, disqus, wordpress, discourse,
commento, mastodon, csv) are parsed lazily by the modules beside this one; every event is checked
against the schema here, so a record the pipeline would refuse is reported with its location.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import msgspec
import orjson

from streams.models import CommentEvent
from streams.sources.common import BadRecord, ParseContext, Parsed, SourceFile, iter_lines
from streams.sources.csvsource import parse_csv
from streams.sources.disqus import parse_disqus
from streams.sources.documents import parse_commento, parse_discourse, parse_mastodon
from streams.sources.encoding import SNIFF_BYTES, encoding_problem
from streams.sources.hackernews import parse_hackernews
from streams.sources.jsonlines import BadLine, parse_jsonlines
from streams.sources.reddit import parse_reddit
from streams.sources.threaddump import ThreadDump, ThreadDumpError, load_zone, parse_thread_dump
from streams.sources.wordpress import parse_wordpress

EXPORT_FORMATS = ("reddit", "hackernews", "disqus", "wordpress", "discourse", "commento", "mastodon", "csv")
FORMATS = ("auto", "threaddump", "jsonl", *EXPORT_FORMATS)
JSONL_SUFFIXES = frozenset({".jsonl", ".ndjson", ".json"})
_SNIFF_BYTES = 64 * 1024


class SourceError(ValueError):
    """The source cannot be read as asked (unknown format, used twice, ...)."""


@dataclass(frozen=True, slots=True)
class SourceItem:
    """One record to produce. For a bad line `key` is "" and `value` the raw line (dead-letter bound)."""

    key: str
    value: bytes
    bad: bool = False
    reason: str | None = None
    #: Where it was read ("path:line"), for bad lines: their dead letters say so and land once per line.
    origin: str = ""


class SourceResult:
    """The items of one source, iterable once.

    Thread dumps are parsed up front, so `count`/`warnings` are complete at once; JSON lines are read
    lazily, so there they grow while iterating and are complete when iteration ends.
    """

    def __init__(
        self,
        *,
        fmt: str,
        items: Iterable[SourceItem],
        warnings: list[str],
        dump: ThreadDump | None = None,
        file: SourceFile | None = None,
        detected: str | None = None,
    ) -> None:
        self.format = fmt
        #: Why `--format auto` chose this format (None when the format was given).
        self.detected = detected
        #: The file being read, for progress by bytes (None for thread dumps, parsed up front).
        self.file = file
        self.warnings = warnings
        #: The parsed dump (thread id, title, article) for threaddump sources.
        self.dump = dump
        #: Items yielded so far (good and bad).
        self.count = 0
        #: Bad lines among them.
        self.bad_count = 0
        self._items = iter(items)
        self._started = False

    def __iter__(self) -> Iterator[SourceItem]:
        if self._started:
            raise SourceError("a SourceResult can be iterated only once")
        self._started = True
        return self._iterate()

    def _iterate(self) -> Iterator[SourceItem]:
        for item in self._items:
            self.count += 1
            if item.bad:
                self.bad_count += 1
            yield item


def detect_format(path: Path) -> str:
    """The format `--format auto` picks for `path`."""
    return detect(path)[0]


def _first_object(head: bytes) -> dict[str, object] | None:
    line = head.split(b"\n", 1)[0].strip()
    try:
        value = orjson.loads(line)
    except orjson.JSONDecodeError:
        return None
    if isinstance(value, list) and value and isinstance(value[0], dict):
        value = value[0]
    return value if isinstance(value, dict) else None


def _by_keys(obj: dict[str, object]) -> tuple[str, str] | None:
    keys = obj.keys()
    if "event_id" in keys and "comment_id" in keys:
        return "jsonl", "the first line is a comment event (event_id, comment_id)"
    if "post_stream" in keys:
        return "discourse", "a JSON document with 'post_stream' (a Discourse topic)"
    if "comments" in keys and ("commenters" in keys or "version" in keys):
        return "commento", "a JSON document with 'comments' and 'commenters' (a Commento export)"
    if obj.get("type") in ("comment", "story", "job", "poll", "pollopt") and ("by" in keys or "time" in keys):
        return "hackernews", "the first line has 'type', 'by', 'time' (a Hacker News item)"
    if "objectID" in keys or "hits" in keys:
        return "hackernews", "the first line has 'objectID'/'hits' (Algolia Hacker News hits)"
    if "ancestors" in keys or "descendants" in keys or ("in_reply_to_id" in keys and "account" in keys):
        return "mastodon", "a JSON document with 'ancestors'/'descendants' (a Mastodon status context)"
    if "link_id" in keys or "subreddit" in keys:
        return "reddit", "the first line has 'link_id'/'subreddit' (a Reddit dump line)"
    return None


_MARKERS = (
    (b'"post_stream"', "discourse", "'post_stream' near the start (a Discourse topic)"),
    (b'"commentHex"', "commento", "'commentHex' near the start (a Commento export)"),
    (b'"descendants"', "mastodon", "'descendants' near the start (a Mastodon status context)"),
    (b'"ancestors"', "mastodon", "'ancestors' near the start (a Mastodon status context)"),
    (b'"in_reply_to_account_id"', "mastodon", "'in_reply_to_account_id' near the start (Mastodon statuses)"),
    (b'"subreddit"', "reddit", "'subreddit' near the start (Reddit dump lines)"),
    (b'"objectID"', "hackernews", "'objectID' near the start (Algolia Hacker News hits)"),
    (b'"kids"', "hackernews", "'kids' near the start (Hacker News items)"),
)


def detect(path: Path, column_map: dict[str, str] | None = None) -> tuple[str, str]:
    """(format, why) for `--format auto`: by content first, then by extension."""
    head = SourceFile(path).head(_SNIFF_BYTES)
    head = head.removeprefix(b"\xef\xbb\xbf").lstrip()
    suffix = path.suffix.lower()
    if head.startswith(b"<"):
        if b"<disqus" in head:
            return "disqus", "an XML document with a <disqus> root (a Disqus export)"
        if b"<rss" in head and (b"wordpress.org/export" in head or b"<wp:" in head):
            return "wordpress", "an RSS document with the wp: namespace (a WordPress WXR export)"
        raise SourceError("an XML file that is neither a Disqus nor a WordPress export; give --format")
    if head.startswith((b"{", b"[")):
        obj = _first_object(head)
        found = _by_keys(obj) if obj is not None else None
        if found is None and obj is None:
            found = next(((fmt, why) for marker, fmt, why in _MARKERS if marker in head), None)
        return found or ("jsonl", "JSON lines without an export format's keys (read as comment events)")
    if column_map or suffix == ".csv":
        return "csv", "a --map was given" if column_map else "the .csv extension"
    if suffix in JSONL_SUFFIXES:
        return "jsonl", f"the {suffix} extension"
    return "threaddump", "plain text (a thread dump)"


def parse_source(
    path: Path, fmt: str = "auto", tz: str = "UTC", column_map: dict[str, str] | None = None
) -> SourceResult:
    """Parse `path` as `fmt` (one of FORMATS); `tz` is the zone of times without an offset.

    Raises SourceError for an unknown format or a UTF-16/32 file, ThreadDumpError for a bad dump (or bad `tz`), OSError
    if the file cannot be read. Bad records are items, not errors; an export that cannot be read at
    all raises SourceParseError while iterating.
    """
    if fmt not in FORMATS:
        raise SourceError(f"unknown format {fmt!r} (expected one of {', '.join(FORMATS)})")
    load_zone(tz, str(path))  # reject a bad --tz whatever the format
    with path.open("rb") as fh:  # a UTF-16 file would otherwise fail line by line, obscurely
        problem = encoding_problem(fh.read(SNIFF_BYTES), str(path))
    if problem is not None:
        raise SourceError(f"{path}: {problem}")
    detected: str | None = None
    if fmt == "auto":
        fmt, detected = detect(path, column_map)
    if fmt in EXPORT_FORMATS:
        file = SourceFile(path)
        ctx = ParseContext(source_name=str(path), tz=tz, column_map=dict(column_map or {}))
        items = _export_items(fmt, file, ctx)
        return SourceResult(fmt=fmt, items=items, warnings=ctx.warnings, file=file, detected=detected)
    if fmt == "jsonl":
        path.stat()  # fail now, not on first iteration, if the file is missing
        warnings: list[str] = []
        file = SourceFile(path)
        return SourceResult(
            fmt=fmt, items=_jsonl_items(file, warnings), warnings=warnings, file=file, detected=detected
        )
    result = _threaddump_result(path, tz)
    result.detected = detected
    return result


def _threaddump_result(path: Path, tz: str) -> SourceResult:
    data = path.read_bytes()
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line_no = data.count(b"\n", 0, exc.start) + 1
        raise ThreadDumpError.at(str(path), line_no, f"not UTF-8 text (byte offset {exc.start})") from exc
    dump = parse_thread_dump(text, source_name=str(path), tz=tz)
    # A dump is a snapshot, not a stream: produce it in posting order (stable for equal times), so
    # event-time windows see a replay as it happened instead of hours of disorder.
    in_time_order = sorted(dump.comments, key=lambda c: c.posted_at)
    items = [SourceItem(key=dump.thread_id, value=msgspec.json.encode(c)) for c in in_time_order]
    return SourceResult(fmt="threaddump", items=items, warnings=list(dump.warnings), dump=dump)


def _jsonl_items(file: SourceFile, warnings: list[str]) -> Iterator[SourceItem]:
    path = file.path
    where = path.resolve()
    with file.open() as fh:
        for parsed in parse_jsonlines(fh, source_name=str(path)):
            if isinstance(parsed, BadLine):
                warnings.append(f"{path}: line {parsed.line_no}: {parsed.reason[:300]}")
                yield SourceItem(
                    key="", value=parsed.raw, bad=True, reason=parsed.reason, origin=f"{where}:{parsed.line_no}"
                )
            else:
                yield SourceItem(key=parsed.thread_id, value=msgspec.json.encode(parsed))


_event_decoder = msgspec.json.Decoder(CommentEvent)


def _parsed(fmt: str, file: SourceFile, ctx: ParseContext) -> Iterator[Parsed]:
    if fmt == "reddit":
        with file.open() as fh:
            yield from parse_reddit(iter_lines(fh), ctx)
    elif fmt == "hackernews":
        with file.open() as fh:
            yield from parse_hackernews(iter_lines(fh), ctx)
    elif fmt == "disqus":
        yield from parse_disqus(file.open, ctx)
    elif fmt == "wordpress":
        yield from parse_wordpress(file.open, ctx)
    elif fmt == "csv":
        with file.open() as fh:
            yield from parse_csv(fh, ctx, file.path)
    else:
        with file.open() as fh:
            data = fh.read()
        parser = {"discourse": parse_discourse, "commento": parse_commento, "mastodon": parse_mastodon}[fmt]
        yield from parser(data, ctx)


def _export_items(fmt: str, file: SourceFile, ctx: ParseContext) -> Iterator[SourceItem]:
    """SourceItems of an export; each event is checked against the schema (as ingest will check it)."""
    for parsed in _parsed(fmt, file, ctx):
        if isinstance(parsed, BadRecord):
            yield SourceItem(
                key="",
                value=parsed.raw,
                bad=True,
                reason=f"{parsed.where}: {parsed.reason}",
                origin=f"{file.path.resolve()}#{parsed.where}",
            )
            continue
        value = msgspec.json.encode(parsed)
        try:
            _event_decoder.decode(value)
        except msgspec.ValidationError as exc:
            where = f"comment {parsed.comment_id}"
            yield SourceItem(key="", value=value, bad=True, reason=f"{where}: does not fit the event schema: {exc}")
            continue
        yield SourceItem(key=parsed.thread_id, value=value)
