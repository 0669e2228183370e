"""Pick a parser for an input file and turn its output into (key, value) items ready to produce.

`--format auto` goes by extension (.jsonl/.ndjson/.json -> jsonl), then by content (a first
non-blank byte of "{" -> jsonl), else threaddump.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import msgspec

from streams.sources.encoding import SNIFF_BYTES, encoding_problem
from streams.sources.jsonlines import BadLine, parse_jsonlines
from streams.sources.threaddump import ThreadDump, ThreadDumpError, load_zone, parse_thread_dump

FORMATS = ("auto", "threaddump", "jsonl")
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


class SourceResult:
    """The items of one source, iterable once.

    Thread dumps are parsed up front, so `count`/`warnings` are complete at once; JSON lines are read
    lazily, so there they grow while iterating and are complete when iteration ends.
    """

    def __init__(
        self, *, fmt: str, items: Iterable[SourceItem], warnings: list[str], dump: ThreadDump | None = None
    ) -> None:
        self.format = fmt
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
    """Return "jsonl" or "threaddump" for `--format auto`."""
    if path.suffix.lower() in JSONL_SUFFIXES:
        return "jsonl"
    with path.open("rb") as fh:
        head = fh.read(_SNIFF_BYTES)
    head = head.removeprefix(b"\xef\xbb\xbf").lstrip()
    return "jsonl" if head.startswith(b"{") else "threaddump"


def parse_source(path: Path, fmt: str = "auto", tz: str = "UTC") -> SourceResult:
    """Parse `path` as `fmt` ("threaddump", "jsonl" or "auto"); `tz` is the dump's local zone.

    Raises SourceError for an unknown format or a UTF-16/32 file, ThreadDumpError for a bad dump (or bad `tz`), OSError
    if the file cannot be read. Bad JSON lines are items, not errors.
    """
    if fmt not in FORMATS:
        raise SourceError(f"unknown format {fmt!r} (expected one of {', '.join(FORMATS)})")
    load_zone(tz, str(path))  # reject a bad --tz whatever the format
    with path.open("rb") as fh:  # a UTF-16 file would otherwise fail line by line, obscurely
        problem = encoding_problem(fh.read(SNIFF_BYTES), str(path))
    if problem is not None:
        raise SourceError(f"{path}: {problem}")
    if fmt == "auto":
        fmt = detect_format(path)
    if fmt == "jsonl":
        path.stat()  # fail now, not on first iteration, if the file is missing
        warnings: list[str] = []
        return SourceResult(fmt=fmt, items=_jsonl_items(path, warnings), warnings=warnings)
    return _threaddump_result(path, tz)


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


def _jsonl_items(path: Path, warnings: list[str]) -> Iterator[SourceItem]:
    with path.open("rb") as fh:
        for parsed in parse_jsonlines(fh, source_name=str(path)):
            if isinstance(parsed, BadLine):
                warnings.append(f"{path}: line {parsed.line_no}: {parsed.reason}")
                yield SourceItem(key="", value=parsed.raw, bad=True, reason=parsed.reason)
            else:
                yield SourceItem(key=parsed.thread_id, value=msgspec.json.encode(parsed))
