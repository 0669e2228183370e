"""CSV with a header row and a column mapping: ``--map body=text,author=user,posted_at=time,...``.

Fields (left of "="): ``body``, ``author``, ``posted_at`` (required), ``comment_id``,
``thread_id``, ``parent_id``, ``thread_title``, ``parent_author``, ``edited_at``, ``url``,
``state``. A field not mapped is read from the column of the same name when there is one.
- comment ``csv:<comment_id>``; without an id column, ``csv:`` + a hash of the row's thread,
  author, time and body (stable across re-feeds, but two identical rows are one comment);
- thread ``csv:<thread_id>``, else ``csv:<file stem>``; parent ``csv:<parent_id>`` when not empty;
- times: ISO 8601 (without an offset read in ``--tz``) or epoch seconds;
- ``state``: visible/approved/published/1, pending/unapproved/0, spam, deleted, removed/trash,
  hidden; another value is a bad row.
The file is read as UTF-8 (a BOM is dropped); errors give the row's line number.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterator
from pathlib import Path
from typing import IO

import msgspec

from streams.models import SourceState
from streams.sources.common import BadRecord, ParseContext, Parsed, SourceParseError, make_event, sha16, text_time

FIELDS = (
    "body",
    "author",
    "posted_at",
    "comment_id",
    "thread_id",
    "parent_id",
    "thread_title",
    "parent_author",
    "edited_at",
    "url",
    "state",
)
REQUIRED = ("body", "author", "posted_at")
_ESCAPED = re.compile("[\udc80-\udcff]")
_STATES: dict[str, SourceState] = {
    "visible": "visible",
    "approved": "visible",
    "published": "visible",
    "1": "visible",
    "pending": "pending",
    "unapproved": "pending",
    "0": "pending",
    "spam": "spam",
    "deleted": "deleted",
    "removed": "removed",
    "trash": "removed",
    "hidden": "hidden",
}


def parse_column_map(text: str) -> dict[str, str]:
    """``body=text,author=user`` -> {"body": "text", "author": "user"}; ValueError on a bad spec."""
    mapping: dict[str, str] = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        field, sep, column = part.partition("=")
        field, column = field.strip(), column.strip()
        if not sep or not field or not column:
            raise ValueError(f"bad --map entry {part!r} (expected FIELD=COLUMN)")
        if field not in FIELDS:
            raise ValueError(f"unknown --map field {field!r} (expected one of {', '.join(FIELDS)})")
        mapping[field] = column
    return mapping


def parse_csv(stream: IO[bytes], ctx: ParseContext, path: Path) -> Iterator[Parsed]:
    # Bytes that are not UTF-8 are kept as surrogates and reported per row: a strict decoder would
    # fail on a whole 8 KiB chunk at once (its rows lost, the line number wrong).
    text = io.TextIOWrapper(stream, encoding="utf-8-sig", errors="surrogateescape", newline="")
    reader = csv.reader(text)
    try:
        header = next(reader)
    except StopIteration:
        return
    except csv.Error as exc:
        raise SourceParseError(f"{ctx.source_name}: line 1: cannot read the CSV header: {exc}") from exc
    if _not_utf8(header):
        raise SourceParseError(f"{ctx.source_name}: line 1: the CSV header is not UTF-8 text")
    columns = {name.strip(): i for i, name in enumerate(header)}
    index: dict[str, int] = {}
    for field in FIELDS:
        column = ctx.column_map.get(field, field)
        if column in columns:
            index[field] = columns[column]
        elif field in ctx.column_map:
            raise SourceParseError(
                f"{ctx.source_name}: line 1: --map {field}={column}: no column {column!r} in the header"
            )
    missing = [f for f in REQUIRED if f not in index]
    if missing:
        raise SourceParseError(
            f"{ctx.source_name}: line 1: no column for {', '.join(missing)} "
            f"(header: {', '.join(header)}); map them with --map body=COLUMN,author=COLUMN,posted_at=COLUMN"
        )
    zone = ctx.zone
    default_thread = path.stem
    while True:
        line_no = reader.line_num + 1
        try:
            row = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            yield BadRecord(f"line {line_no}", b"", f"unreadable CSV row: {exc}")
            continue
        if not any(cell.strip() for cell in row):
            continue
        where = f"line {line_no}"
        if _not_utf8(row):
            yield BadRecord(where, _row_bytes(row), "not UTF-8 text")
            continue
        raw = msgspec.json.encode(dict(zip(header, row, strict=False)))

        def get(field: str, row: list[str] = row) -> str:
            i = index.get(field)
            return row[i].strip() if i is not None and i < len(row) else ""

        try:
            posted_at = text_time(get("posted_at"), zone)
            edited = get("edited_at")
            raw_state = get("state").lower()
            state = _STATES.get(raw_state) if raw_state else None
            if raw_state and state is None:
                raise ValueError(f"unknown state {raw_state!r} (expected one of {', '.join(sorted(_STATES))})")
            thread = get("thread_id") or default_thread
            author, body = get("author"), row[index["body"]] if index["body"] < len(row) else ""
            ident = get("comment_id") or sha16(
                msgspec.json.encode([thread, author, posted_at.isoformat(), body]).decode()
            )
            parent = get("parent_id")
            yield make_event(
                source="csv",
                thread_id=f"csv:{thread}",
                thread_title=get("thread_title") or None,
                comment_id=f"csv:{ident}",
                parent_id=f"csv:{parent}" if parent else None,
                parent_author=get("parent_author") or None,
                author=author,
                posted_at=posted_at,
                edited_at=text_time(edited, zone) if edited else None,
                body=body,
                url=get("url") or None,
                source_state=state,
            )
        except ValueError as exc:
            yield BadRecord(where, raw, str(exc))


def _not_utf8(row: list[str]) -> bool:
    """Whether a row decoded with surrogateescape held bytes that are not UTF-8."""
    return any(not cell.isascii() and _ESCAPED.search(cell) for cell in row)


def _row_bytes(row: list[str]) -> bytes:
    """The row as CSV in its original bytes (the undecodable ones as they were)."""
    out = io.StringIO()
    csv.writer(out).writerow(row)
    return out.getvalue().rstrip("\r\n").encode("utf-8", "surrogateescape")
