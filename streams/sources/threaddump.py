"""Parser for plain-text thread dumps: a title, the article, then comments with "Permalink" headers.

Layout (see ``streams/samples/*.txt``)::

    <title>
    <article paragraphs>
    <Author> <ParentAuthor> <Day>, MM/DD/YYYY - HH:MM Permalink      (a reply)
    <body paragraphs, possibly none>
    In reply to by <ParentAuthor>
    <Author> <Day>, MM/DD/YYYY - HH:MM Permalink                     (a top-level comment)
    <body paragraphs, possibly none>

The header has no delimiter between author and parent author, so the footer decides the split.
Everything here is pure: text in, events out; ids depend only on the content.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable
from datetime import UTC, datetime
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import msgspec

from streams.models import CommentEvent, EventType

SOURCE = "threaddump"
EVENT_TYPE: EventType = "comment.created"

#: Only ASCII whitespace is layout: NBSP and other Unicode spaces are content and must survive.
_WS = " \t\r\n\x0b\x0c"
_DAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
#: Limits of CommentEvent (NonEmpty / body) that msgspec only enforces on decode, not on construction.
_MAX_AUTHOR = 512
_MAX_BODY = 1_000_000

# [0-9], not \d: \d also matches non-ASCII digits that no dump uses for dates.
_HEADER_RE = re.compile(
    r"(?P<names>.+?) (?P<dow>[A-Za-z]+), "
    r"(?P<month>[0-9]{1,2})/(?P<day>[0-9]{1,2})/(?P<year>[0-9]{4}) - "
    r"(?P<hour>[0-9]{1,2}):(?P<minute>[0-9]{2}) Permalink"
)
# A line ending in "Permalink" that carries something date-like wants to be a header; if it does not
# parse it is rejected loudly instead of silently becoming body text. (No ".*": keeps search linear.)
_DATEISH_RE = re.compile(r"[0-9]/[0-9]+/[0-9]")
_FOOTER_PREFIX = "In reply to by "
# A header cut off before its end (a truncated scrape): names, a day name and the date, then part of
# " - HH:MM Permalink". With at least " -" after the date it cannot be prose: an error on that line.
_DAY_ALT = "|".join(_DAYS)
_PERMALINK_PREFIX = "P(?:e(?:r(?:m(?:a(?:l(?:i(?:n)?)?)?)?)?)?)?"
_TRUNCATED_HEADER_RE = re.compile(
    rf"\S.*? (?:{_DAY_ALT}), [0-9]{{1,2}}/[0-9]{{1,2}}/[0-9]{{4}} -"
    rf"(?: (?:[0-9]{{1,2}}(?::(?:[0-9]{{1,2}}(?: {_PERMALINK_PREFIX})?)?)?)?)?"
)
# Cut off within the date: could (rarely) be a sentence, so only a suspect (see _suspect_header).
_PARTIAL_HEADER_RE = re.compile(rf"\S.*? (?:{_DAY_ALT}), [0-9]{{1,2}}(?:/(?:[0-9]{{1,2}}(?:/[0-9]{{0,4}})?)?)?")
_HEADER_FORM = "'<Author> [<ParentAuthor>] <Day>, MM/DD/YYYY - HH:MM Permalink'"
# C0 controls other than tab/LF/VT/FF/CR, and lone surrogates (from surrogateescape decoding):
# neither occurs in a text dump, and surrogates cannot even be hashed as UTF-8.
_BINARY_RE = re.compile(r"[\x00-\x08\x0e-\x1f\x7f\ud800-\udfff]")


class ThreadDumpError(ValueError):
    """The text is not a valid thread dump. The message is one line and names the line number."""

    def __init__(self, message: str, *, line_no: int | None = None, source_name: str | None = None) -> None:
        super().__init__(message)
        self.line_no = line_no
        self.source_name = source_name

    @classmethod
    def at(cls, source_name: str, line_no: int | None, message: str) -> ThreadDumpError:
        """Build "<source>: line <n>: <message>" (no line part when the error is not about one line)."""
        where = f"{source_name}: line {line_no}" if line_no is not None else source_name
        return cls(f"{where}: {message}", line_no=line_no, source_name=source_name)


class ThreadDump(msgspec.Struct, kw_only=True, frozen=True):
    """One parsed dump. `comments` are in file order (which is not time order)."""

    source_name: str
    thread_id: str
    title: str
    article: str
    comments: list[CommentEvent]
    warnings: list[str]


class _Raw(msgspec.Struct, kw_only=True, frozen=True):
    """A comment before ids are assigned."""

    line_no: int
    author: str
    parent_author: str | None
    posted_at: datetime
    body: str


def _sha16(data: str | bytes) -> str:
    raw = data.encode("utf-8") if isinstance(data, str) else data
    return hashlib.sha256(raw).hexdigest()[:16]


def thread_id_for(title: str, article: str) -> str:
    """`td-` + 16 hex of sha256(title + "\\n" + article)."""
    return "td-" + _sha16(title + "\n" + article)


def comment_id_for(
    thread_id: str, author: str, posted_at: datetime, parent_author: str | None, body: str, ordinal: int = 0
) -> str:
    """`c-` + 16 hex of sha256 over the comment's identity; `ordinal` > 0 only for exact duplicates.

    The fields are hashed as a JSON array so that no choice of separator can make two different
    comments collide (names and bodies may contain any character).
    """
    fields: list[str | int] = [thread_id, author, posted_at.isoformat(), parent_author or "", body]
    if ordinal:
        # The first copy keeps the plain id, so a duplicate appearing later never renames it.
        fields.append(ordinal)
    return "c-" + _sha16(msgspec.json.encode(fields))


def event_id_for(comment_id: str, event_type: str = EVENT_TYPE) -> str:
    """`e-` + 16 hex of sha256(comment_id + event_type)."""
    return "e-" + _sha16(comment_id + event_type)


def resolve_parent_id(
    candidates: Iterable[tuple[str, str, datetime]],
    parent_author: str | None,
    before: datetime,
    exclude_id: str | None = None,
) -> str | None:
    """The comment a reply to `parent_author` posted at `before` most likely answers.

    `candidates` are (comment_id, author, posted_at) in file/arrival order. Picks the latest comment
    by `parent_author` with posted_at <= `before`, skipping `exclude_id` (the reply itself); among
    equally late ones the first in order wins. None when there is no such comment (parent absent).
    """
    if parent_author is None:
        return None
    best_id: str | None = None
    best_at: datetime | None = None
    for comment_id, author, posted_at in candidates:
        if author != parent_author or comment_id == exclude_id or posted_at > before:
            continue
        if best_at is None or posted_at > best_at:  # strict ">" keeps the earlier one on ties
            best_id, best_at = comment_id, posted_at
    return best_id


def load_zone(tz: str, source_name: str = "<tz>") -> ZoneInfo:
    """ZoneInfo for an IANA name, or ThreadDumpError (ZoneInfo raises KeyError/ValueError/OSError)."""
    try:
        return ZoneInfo(tz)
    except (ZoneInfoNotFoundError, ValueError, OSError) as exc:
        raise ThreadDumpError.at(
            source_name, None, f"unknown time zone {tz!r} (expected an IANA name like 'Europe/Berlin')"
        ) from exc


def _strip(line: str) -> str:
    return line.strip(_WS)


def _paragraphs(lines: list[str]) -> str:
    """Blank-line separated paragraphs joined by one blank line; ASCII whitespace trimmed at the edges.

    Lines keep their leading whitespace (indentation inside a paragraph is content) but lose trailing
    ASCII whitespace. NBSPs are not whitespace here.
    """
    paragraphs: list[list[str]] = []
    current: list[str] = []
    for line in lines:
        if _strip(line):
            current.append(line.rstrip(_WS))
        elif current:
            paragraphs.append(current)
            current = []
    if current:
        paragraphs.append(current)
    return _strip("\n\n".join("\n".join(p) for p in paragraphs))


def _looks_like_json(line: str) -> bool:
    if not line.startswith(("{", "[")):
        return False
    try:
        msgspec.json.decode(line)
    except (msgspec.DecodeError, RecursionError):
        return False
    return True


class _Header(msgspec.Struct, frozen=True):
    names: str
    local: datetime


def _parse_header(line: str, line_no: int, source_name: str, warnings: list[str]) -> _Header | None:
    """The header on this (stripped) line, None if it is not a header, ThreadDumpError if malformed."""
    if not line.endswith("Permalink"):
        return None
    m = _HEADER_RE.fullmatch(line)
    if m is None:
        if _DATEISH_RE.search(line):
            raise ThreadDumpError.at(
                source_name,
                line_no,
                f"malformed comment header {line[-80:]!r} "
                "(expected '<Author> [<ParentAuthor>] <Day>, MM/DD/YYYY - HH:MM Permalink')",
            )
        return None
    stamp = f"{m['month']}/{m['day']}/{m['year']} - {m['hour']}:{m['minute']}"
    try:
        local = datetime(int(m["year"]), int(m["month"]), int(m["day"]), int(m["hour"]), int(m["minute"]))
    except ValueError as exc:
        message = f"impossible date/time {stamp!r} in header: {exc}"
        raise ThreadDumpError.at(source_name, line_no, message) from exc
    dow = m["dow"]
    if dow not in _DAYS:
        raise ThreadDumpError.at(
            source_name, line_no, f"unknown day name {dow!r} in header (expected one of {', '.join(_DAYS)})"
        )
    actual = _DAYS[local.weekday()]
    if dow != actual:
        # Scrapers get day names wrong more often than dates; keep the date, report the mismatch.
        warnings.append(f"{source_name}: line {line_no}: header says {dow} but {stamp} is a {actual}")
    return _Header(m["names"], local)


def _truncated_header_error(line: str, line_no: int, source_name: str) -> ThreadDumpError:
    return ThreadDumpError.at(
        source_name, line_no, f"comment header is truncated: {line[-80:]!r} stops short of the full form {_HEADER_FORM}"
    )


def _to_utc(local: datetime, zone: ZoneInfo, line_no: int, source_name: str, warnings: list[str]) -> datetime:
    aware = local.replace(tzinfo=zone)
    try:
        posted = aware.astimezone(UTC)
        round_trip = posted.astimezone(zone).replace(tzinfo=None)
    except OverflowError as exc:
        raise ThreadDumpError.at(source_name, line_no, f"time {local} is out of range in {zone.key}") from exc
    if round_trip != local:
        warnings.append(f"{source_name}: line {line_no}: {local} does not exist in {zone.key} (DST gap)")
    elif aware.utcoffset() != local.replace(tzinfo=zone, fold=1).utcoffset():
        where = f"{source_name}: line {line_no}"
        warnings.append(f"{where}: {local} is ambiguous in {zone.key} (DST end), took the first")
    return posted


def _split_lines(text: str) -> list[str]:
    # Split on "\n" only: str.splitlines() would also break on U+2028, \x85 etc. inside comment text.
    return [line[:-1] if line.endswith("\r") else line for line in text.split("\n")]


def parse_thread_dump(text: str, *, source_name: str, tz: str = "UTC") -> ThreadDump:
    """Parse a thread dump into CommentEvents (times read as wall-clock in `tz`, stored in UTC).

    Raises ThreadDumpError for anything that is not a well-formed dump; never another exception type.
    """
    zone = load_zone(tz, source_name)
    if text.startswith("\ufeff"):
        text = text[1:]
    lines = _split_lines(text)
    warnings: list[str] = []

    for idx, line in enumerate(lines):
        bad = _BINARY_RE.search(line)
        if bad is not None:
            raise ThreadDumpError.at(
                source_name,
                idx + 1,
                f"control character U+{ord(bad.group()):04X} at column {bad.start() + 1}: "
                "binary data, not a text thread dump",
            )

    title_idx = next((i for i, line in enumerate(lines) if _strip(line)), None)
    if title_idx is None:
        raise ThreadDumpError.at(source_name, 1, "empty input: no title line")
    title = _strip(lines[title_idx])
    if _looks_like_json(title):
        raise ThreadDumpError.at(
            source_name, title_idx + 1, "line is JSON, not a thread dump title (use --format jsonl)"
        )
    if _parse_header(title, title_idx + 1, source_name, warnings) is not None:
        raise ThreadDumpError.at(source_name, title_idx + 1, "no title: the first line is a comment header")

    # Cut the rest into the article and one block per comment header.
    article_lines: list[str] = []
    blocks: list[tuple[int, _Header, list[tuple[int, str]]]] = []
    suspects: list[tuple[int, str]] = []  # lines that may be headers cut short within the date
    for idx in range(title_idx + 1, len(lines)):
        line_no = idx + 1
        stripped = _strip(lines[idx])
        header = _parse_header(stripped, line_no, source_name, warnings)
        if header is None and _TRUNCATED_HEADER_RE.fullmatch(stripped):
            raise _truncated_header_error(stripped, line_no, source_name)
        if header is None and _PARTIAL_HEADER_RE.fullmatch(stripped):
            suspects.append((line_no, stripped))
        if header is not None:
            blocks.append((line_no, header, []))
        elif blocks:
            blocks[-1][2].append((line_no, lines[idx]))
        elif stripped.startswith(_FOOTER_PREFIX):
            message = "'In reply to by' footer before any comment header"
            raise ThreadDumpError.at(source_name, line_no, message)
        else:
            article_lines.append(lines[idx])

    article = _paragraphs(article_lines)
    raws = []
    for no, header, body in blocks:
        try:
            raws.append(_parse_block(no, header, body, zone, source_name, warnings))
        except ThreadDumpError as exc:
            # A header cut short inside this block merged two comments: that, not the symptom, is the error.
            end = body[-1][0] if body else no
            inside = [(n, text) for n, text in suspects if no < n <= end]
            if inside:
                raise _truncated_header_error(inside[0][1], inside[0][0], source_name) from exc
            raise
    for n, text in suspects:
        where = f"{source_name}: line {n}"
        warnings.append(f"{where}: {text[-80:]!r} looks like a truncated comment header; kept as text")
    thread_id = thread_id_for(title, article)
    comments = _build_events(raws, thread_id, title, source_name, warnings)
    return ThreadDump(
        source_name=source_name,
        thread_id=thread_id,
        title=title,
        article=article,
        comments=comments,
        warnings=warnings,
    )


def _parse_block(
    line_no: int,
    header: _Header,
    body: list[tuple[int, str]],
    zone: ZoneInfo,
    source_name: str,
    warnings: list[str],
) -> _Raw:
    """One comment: split author/parent using the footer, collect the body paragraphs."""
    filled = [(n, _strip(text)) for n, text in body if _strip(text)]
    footers = [(n, text) for n, text in filled if text.startswith(_FOOTER_PREFIX)]
    parent: str | None = None
    body_lines = [text for _, text in body]
    if footers:
        footer_no, footer = footers[-1]
        if len(footers) > 1 or footer_no != filled[-1][0]:
            stray = footers[0][0] if footer_no == filled[-1][0] else footer_no
            raise ThreadDumpError.at(
                source_name,
                stray,
                "'In reply to by' line inside a comment; it must be the comment's last line",
            )
        parent = _strip(footer[len(_FOOTER_PREFIX) :])  # non-empty: `filled` lines are stripped
        tail = " " + parent
        if not header.names.endswith(tail):
            raise ThreadDumpError.at(
                source_name,
                line_no,
                f"header names {header.names!r} do not end with the footer's parent author {parent!r} "
                f"(footer at line {footer_no})",
            )
        author = _strip(header.names[: -len(tail)])
        if not author:
            message = f"header has no author before parent author {parent!r}"
            raise ThreadDumpError.at(source_name, line_no, message)
        body_lines = [text for n, text in body if n < footer_no]
    else:
        author = _strip(header.names)
    if len(author) > _MAX_AUTHOR:
        raise ThreadDumpError.at(source_name, line_no, f"author name longer than {_MAX_AUTHOR} characters")
    text = _paragraphs(body_lines)
    if len(text) > _MAX_BODY:
        raise ThreadDumpError.at(source_name, line_no, f"comment body longer than {_MAX_BODY} characters")
    posted_at = _to_utc(header.local, zone, line_no, source_name, warnings)
    return _Raw(line_no=line_no, author=author, parent_author=parent, posted_at=posted_at, body=text)


def _build_events(
    raws: list[_Raw], thread_id: str, title: str, source_name: str, warnings: list[str]
) -> list[CommentEvent]:
    ids: list[str] = []
    first_seen: dict[str, tuple[int, int]] = {}  # plain id -> (line of first copy, copies so far)
    for raw in raws:
        identity = (thread_id, raw.author, raw.posted_at, raw.parent_author, raw.body)
        plain = comment_id_for(*identity)
        if plain in first_seen:
            first_line, copies = first_seen[plain]
            first_seen[plain] = (first_line, copies + 1)
            ids.append(comment_id_for(*identity, ordinal=copies))
            where = f"{source_name}: line {raw.line_no}"
            warnings.append(f"{where}: exact duplicate of the comment at line {first_line}")
        else:
            first_seen[plain] = (raw.line_no, 1)
            ids.append(plain)

    # Candidates per author, in file order.
    by_author: dict[str, list[tuple[int, str, str, datetime]]] = {}
    for idx, (raw, cid) in enumerate(zip(raws, ids, strict=True)):
        by_author.setdefault(raw.author, []).append((idx, cid, raw.author, raw.posted_at))

    events: list[CommentEvent] = []
    for idx, (raw, cid) in enumerate(zip(raws, ids, strict=True)):
        parent_id: str | None = None
        if raw.parent_author is not None:
            # A same-minute candidate later in the file is left out: otherwise two same-minute
            # self-replies would pick each other and make a parent cycle.
            candidates = (
                (c_id, c_author, c_at)
                for c_idx, c_id, c_author, c_at in by_author.get(raw.parent_author, ())
                if c_at < raw.posted_at or (c_at == raw.posted_at and c_idx < idx)
            )
            parent_id = resolve_parent_id(candidates, raw.parent_author, raw.posted_at, exclude_id=cid)
        events.append(
            CommentEvent(
                event_id=event_id_for(cid),
                event_type=EVENT_TYPE,
                source=SOURCE,
                thread_id=thread_id,
                thread_title=title,
                comment_id=cid,
                parent_id=parent_id,
                parent_author=raw.parent_author,
                author=raw.author,
                posted_at=raw.posted_at,
                body=raw.body,
            )
        )
    return events
