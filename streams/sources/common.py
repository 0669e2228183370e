"""What every export parser shares: the record type, ids, times, HTML to text, file opening.

Parsers are pure generators over bytes: they yield a CommentEvent per record or a BadRecord (the
record's original bytes, where it was and why) and never raise for one bad record.
"""

from __future__ import annotations

import hashlib
import html
import io
import json
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from html.parser import HTMLParser
from pathlib import Path
from typing import IO, Any
from zoneinfo import ZoneInfo

import msgspec
import orjson

from streams.models import CommentEvent, EventType, SourceState

ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
#: Pushshift / Arctic Shift dumps are compressed with --long=31: a 2 GiB window.
ZSTD_MAX_WINDOW = 2**31
#: Placeholder author when the source has none (deleted accounts, anonymous posts without a name).
DELETED_AUTHOR = "[deleted]"
ANONYMOUS_AUTHOR = "Anonymous"
_MAX_NAME = 512


class SourceParseError(ValueError):
    """The input cannot be read as the format at all (not one bad record): a message with a location."""


class BadRecord(msgspec.Struct, frozen=True):
    """A record that does not become an event: where it is ("line 12", "post 3 (element 9)"), its
    original bytes (dead-letter bound) and why."""

    where: str
    raw: bytes
    reason: str


Parsed = CommentEvent | BadRecord


@dataclass
class ParseContext:
    """What a parser gets besides the bytes. `warnings` grows while parsing (shown on stderr)."""

    source_name: str
    tz: str = "UTC"
    column_map: dict[str, str] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)

    def warn(self, where: str, message: str) -> None:
        self.warnings.append(f"{self.source_name}: {where}: {message}" if where else f"{self.source_name}: {message}")

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.tz)


class CountingReader(io.RawIOBase):
    """A raw stream that counts the bytes read from the file below it (progress by bytes)."""

    def __init__(self, raw: IO[bytes], on_read: Callable[[int], None]) -> None:
        self._raw = raw
        self._on_read = on_read

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        data = self._raw.read(len(buffer))
        n = len(data)
        buffer[:n] = data
        self._on_read(n)
        return n

    def close(self) -> None:
        self._raw.close()
        super().close()


class SourceFile:
    """A file to parse: plain or zstd-compressed (by magic bytes), opened as often as a parser needs.

    `bytes_read` counts bytes of the file on disk (compressed bytes for .zst), `size` is its size:
    together they give a progress bar a known total.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self.size = path.stat().st_size
        self.bytes_read = 0
        with path.open("rb") as fh:
            self.compressed = fh.read(4) == ZSTD_MAGIC

    def _count(self, n: int) -> None:
        self.bytes_read += n

    def open(self) -> IO[bytes]:
        """A buffered binary stream of the (decompressed) content; reading it advances `bytes_read`."""
        self.bytes_read = 0
        raw: IO[bytes] = io.BufferedReader(CountingReader(self.path.open("rb"), self._count), 1 << 20)
        if not self.compressed:
            return raw
        import zstandard

        reader = zstandard.ZstdDecompressor(max_window_size=ZSTD_MAX_WINDOW).stream_reader(raw, read_size=1 << 20)
        return io.BufferedReader(reader, 1 << 20)

    def head(self, n: int = 64 * 1024) -> bytes:
        """The first `n` bytes of the content (decompressed), for format detection."""
        if not self.compressed:
            with self.path.open("rb") as fh:
                return fh.read(n)
        import zstandard

        with self.path.open("rb") as fh:
            reader = zstandard.ZstdDecompressor(max_window_size=ZSTD_MAX_WINDOW).stream_reader(fh)
            try:
                return reader.read(n)
            except zstandard.ZstdError:
                return b""


def record_bytes(value: Any) -> bytes:
    """A record decoded by orjson as JSON again (a dead letter's bytes); never raises.

    orjson reads 1024 levels of nesting but writes only 254: a deeper record is written by the
    standard library instead, and one too deep even for that (the recursion limit) as a placeholder.
    """
    try:
        return orjson.dumps(value)
    except TypeError:
        pass
    try:
        return json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode("utf-8", "surrogatepass")
    except (RecursionError, TypeError, ValueError):
        return b'"(record nested too deeply to write back)"'


def sha16(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def event_id_for(comment_id: str, event_type: EventType = "comment.created") -> str:
    """`e-` + 16 hex of sha256(comment_id + event_type): the same scheme as thread dumps."""
    return "e-" + sha16(comment_id + event_type)


def make_event(
    *,
    source: str,
    thread_id: str,
    comment_id: str,
    author: str,
    posted_at: datetime,
    body: str,
    parent_id: str | None = None,
    thread_title: str | None = None,
    parent_author: str | None = None,
    edited_at: datetime | None = None,
    url: str | None = None,
    source_state: SourceState | None = None,
    source_kind: str | None = None,
) -> CommentEvent:
    """A schema v2 event with a deterministic event id; an edit time before the post time is dropped."""
    if edited_at is not None and edited_at < posted_at:
        edited_at = None
    return CommentEvent(
        schema_version=2,
        event_id=event_id_for(comment_id),
        source=source,
        thread_id=thread_id,
        thread_title=thread_title or None,
        comment_id=comment_id,
        parent_id=parent_id,
        parent_author=parent_author,
        author=name_or(author, ANONYMOUS_AUTHOR),
        posted_at=posted_at,
        edited_at=edited_at,
        body=body,
        url=url or None,
        source_state=source_state,
        source_kind=source_kind,
    )


def name_or(name: object, fallback: str) -> str:
    """A trimmed author name (at most 512 characters), or `fallback` when there is none."""
    text = str(name).strip() if name is not None else ""
    return text[:_MAX_NAME] if text else fallback


def epoch(value: object) -> datetime:
    """Seconds since the epoch as int, float or a numeric string -> aware UTC datetime."""
    if isinstance(value, bool) or value is None:
        raise ValueError(f"not an epoch time: {value!r}")
    if isinstance(value, str):
        try:
            value = float(value.strip())
        except ValueError:
            raise ValueError(f"not an epoch time: {value!r}") from None
    if not isinstance(value, int | float):
        raise ValueError(f"not an epoch time: {value!r}")
    try:
        return datetime.fromtimestamp(value, UTC)
    except (OverflowError, OSError, ValueError) as exc:
        raise ValueError(f"epoch time out of range: {value!r}") from exc


def iso_time(text: object, zone: ZoneInfo | None = None) -> datetime:
    """ISO 8601 ("Z" allowed) -> aware datetime; a time without offset is read in `zone` (UTC if None)."""
    if not isinstance(text, str) or not text.strip():
        raise ValueError(f"not an ISO 8601 time: {text!r}")
    try:
        parsed = datetime.fromisoformat(text.strip().replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        raise ValueError(f"not an ISO 8601 time: {text!r}") from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=zone or UTC)
    return parsed


def text_time(value: object, zone: ZoneInfo | None = None) -> datetime:
    """An epoch number or an ISO 8601 string."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return epoch(value)
    if isinstance(value, str) and re.fullmatch(r"\s*-?[0-9]+(\.[0-9]+)?\s*", value):
        return epoch(value)
    return iso_time(value, zone)


_BLOCK_TAGS = frozenset(
    {"p", "div", "br", "li", "ul", "ol", "blockquote", "pre", "h1", "h2", "h3", "h4", "h5", "h6", "tr", "table", "hr"}
)
_SKIP_TAGS = frozenset({"script", "style", "head", "title"})
_SPACES = re.compile(r"[ \t\r\n\f\v]+")
_PRE_SPACE = "\ue000"


class _TextExtractor(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self._skip = 0
        self._pre = 0

    def parse_marked_section(self, i: int, report: bool = True) -> int:
        # CPython's parser asserts on a marked section it does not know ("<![foo[", "<![0"): read
        # it as browsers do, as a bogus comment up to the next ">" (no ">": text, at the end).
        try:
            return super().parse_marked_section(i, report)
        except AssertionError:
            end = self.rawdata.find(">", i + 3)
            return -1 if end < 0 else end + 1

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _SKIP_TAGS:
            self._skip += 1
        elif tag == "br":
            self.parts.append("\n")
        elif tag == "p":
            self.parts.append("\n\n")
        elif tag in _BLOCK_TAGS:
            self.parts.append("\n")
        if tag == "pre":
            self._pre += 1

    def handle_endtag(self, tag: str) -> None:
        if tag in _SKIP_TAGS:
            self._skip = max(0, self._skip - 1)
        elif tag == "p":
            self.parts.append("\n\n")
        elif tag in _BLOCK_TAGS and tag != "br":
            self.parts.append("\n")
        if tag == "pre":
            self._pre = max(0, self._pre - 1)

    def handle_data(self, data: str) -> None:
        if self._skip:
            return
        # Markup whitespace is layout, except inside <pre> (code keeps its lines and indentation:
        # its spaces are held as a private-use character until the layout pass is done).
        self.parts.append(data.replace(" ", _PRE_SPACE) if self._pre else _SPACES.sub(" ", data))


def html_to_text(markup: str) -> str:
    """Plain text of an HTML fragment: entities decoded, paragraphs as blank lines, tags dropped.

    HN separates paragraphs with a bare <p>; Discourse, Disqus and Mastodon wrap them in <p>...</p>.
    Both come out as paragraphs joined by one blank line.
    """
    if "<" not in markup:
        return html.unescape(markup).strip()
    parser = _TextExtractor()
    parser.feed(markup)
    parser.close()
    text = "".join(parser.parts)
    lines = [line.strip(" ") for line in text.split("\n")]
    out: list[str] = []
    blank = False
    for line in lines:
        if line:
            if blank and out:
                out.append("")
            out.append(line)
            blank = False
        else:
            blank = True
    # One blank line between blocks; single newlines (from <br>) stay.
    return re.sub(r"\n{3,}", "\n\n", "\n".join(out)).strip().replace(_PRE_SPACE, " ")


def iter_lines(stream: IO[bytes]) -> Iterator[tuple[int, bytes]]:
    """(1-based line number, line without line break, BOM dropped on line 1) for non-blank lines."""
    for line_no, line in enumerate(stream, start=1):
        raw = line.rstrip(b"\r\n")
        if line_no == 1 and raw.startswith(b"\xef\xbb\xbf"):
            raw = raw[3:]
        if raw.strip():
            yield line_no, raw
