"""JSON-lines parser: good lines round-trip, bad lines come back as BadLine (never dropped, never fatal)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import msgspec
import pytest

from streams.models import CommentEvent
from streams.sources import BadLine, SourceResult, parse_jsonlines, parse_source
from streams.sources.registry import SourceError, detect_format

EVENT = CommentEvent(
    event_id="e-0123456789abcdef",
    source="jsonl",
    thread_id="td-feedfacecafebeef",
    thread_title="Ein Titel",
    comment_id="c-0123456789abcdef",
    parent_id="c-fedcba9876543210",
    parent_author="are we there yet",
    author="李雷",
    posted_at=datetime(2018, 3, 20, 13, 30, tzinfo=UTC),
    body="first\n\nsecond\u00a0paragraph",
)
GOOD = msgspec.json.encode(EVENT)


def fields(**override: object) -> bytes:
    data = msgspec.to_builtins(EVENT)
    assert isinstance(data, dict)
    data.update(override)
    return msgspec.json.encode({k: v for k, v in data.items() if v is not ...})


def parse(lines: list[bytes]) -> list[CommentEvent | BadLine]:
    return list(parse_jsonlines(lines, source_name="test.jsonl"))


def test_good_line_round_trips() -> None:
    assert parse([GOOD + b"\n"]) == [EVENT]
    assert parse([GOOD + b"\r\n", GOOD]) == [EVENT, EVENT]


def test_offsets_are_kept_as_aware_datetimes() -> None:
    (event,) = parse([fields(posted_at="2018-03-20T09:30:00-04:00")])
    assert isinstance(event, CommentEvent)
    assert event.posted_at == EVENT.posted_at
    assert event.posted_at.utcoffset() is not None


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        (b'{"event_id": "e-1",', "Input data was truncated"),
        (b"not json at all", "JSON is malformed"),
        (GOOD + b" trailing", "trailing characters"),
        (fields(author=...), "missing required field `author`"),
        (
            fields(posted_at="2018-03-20T13:30:00"),
            "Expected `datetime` with a timezone component - at `$.posted_at`",
        ),
        (fields(event_type="comment.liked"), "Invalid enum value 'comment.liked' - at `$.event_type`"),
        (fields(schema_version=3), "at `$.schema_version`"),  # 1 and 2 are known
        (fields(author=""), "Expected `str` of length >= 1 - at `$.author`"),
        (b"[1, 2]", "Expected `object`, got `array`"),
        (b'{"author": "Bj\xf6rn"}', "can't decode byte 0xf6"),
        (b'{"x": ' + b"[" * 100_000 + b"]" * 100_000 + b"}", "nested too deeply"),
    ],
    ids=[
        "truncated",
        "not-json",
        "trailing",
        "missing-field",
        "naive-datetime",
        "wrong-event-type",
        "schema-version",
        "empty-author",
        "array",
        "invalid-utf8",
        "deep-nesting",
    ],
)
def test_bad_lines_are_reported_not_dropped(line: bytes, reason: str) -> None:
    items = parse([GOOD + b"\n", line + b"\n", GOOD + b"\n"])
    assert items[0] == EVENT and items[2] == EVENT
    bad = items[1]
    assert isinstance(bad, BadLine)
    assert bad.line_no == 2
    assert bad.raw == line  # exact bytes, minus the line break
    assert reason in bad.reason


def test_blank_lines_are_skipped_but_counted() -> None:
    items = parse([b"\n", b"   \r\n", GOOD + b"\n", b"\t\n", b"oops\n"])
    assert items[0] == EVENT
    assert isinstance(items[1], BadLine) and items[1].line_no == 5 and items[1].raw == b"oops"
    assert len(items) == 2


def test_bom_on_the_first_line_is_ignored() -> None:
    assert parse([b"\xef\xbb\xbf" + GOOD + b"\n"]) == [EVENT]


def test_is_lazy() -> None:
    def lines() -> Iterator[bytes]:
        yield GOOD
        raise AssertionError("read past the first line")

    it = parse_jsonlines(lines(), source_name="x")
    assert next(it) == EVENT


# --- registry, jsonl side -------------------------------------------------------------------------


def write(path: Path, *lines: bytes) -> Path:
    path.write_bytes(b"".join(line + b"\n" for line in lines))
    return path


def test_parse_source_jsonl_streams_good_and_bad(tmp_path: Path) -> None:
    path = write(tmp_path / "in.ndjson", GOOD, b"", b"{broken", GOOD)
    result = parse_source(path)
    assert isinstance(result, SourceResult) and result.format == "jsonl"
    items = list(result)
    assert [(i.key, i.bad) for i in items] == [(EVENT.thread_id, False), ("", True), (EVENT.thread_id, False)]
    assert msgspec.json.decode(items[0].value, type=CommentEvent) == EVENT
    assert items[1].value == b"{broken" and items[1].reason and "malformed" in items[1].reason
    assert (result.count, result.bad_count) == (3, 1)
    assert len(result.warnings) == 1 and result.warnings[0].startswith(f"{path}: line 3: JSON is malformed")
    with pytest.raises(SourceError, match="only once"):
        list(result)


def test_auto_detection(tmp_path: Path) -> None:
    for name in ["a.jsonl", "a.ndjson", "a.json", "a.JSONL"]:
        assert detect_format(write(tmp_path / name, b"whatever")) == "jsonl"
    assert detect_format(write(tmp_path / "events.log", b"\xef\xbb\xbf" + GOOD)) == "jsonl"
    assert detect_format(write(tmp_path / "noext", b"", b"  " + GOOD)) == "jsonl"
    assert detect_format(write(tmp_path / "dump.txt", b"Title", b"", b"Article")) == "threaddump"
    assert next(iter(parse_source(tmp_path / "noext", fmt="auto"))).key == EVENT.thread_id


def test_forced_format_and_missing_file(tmp_path: Path) -> None:
    path = write(tmp_path / "dump.txt", GOOD)
    assert parse_source(path, fmt="jsonl").format == "jsonl"
    with pytest.raises(FileNotFoundError):
        parse_source(tmp_path / "missing.jsonl", fmt="jsonl")
