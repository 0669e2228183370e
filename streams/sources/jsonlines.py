"""Parser for JSON-lines files of CommentEvents (one JSON object per line).

A bad line is not fatal and is not dropped: it comes back as a BadLine with its raw bytes so the
feeder can send it on as-is and it ends up in the dead-letter queue with msgspec's reason.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

import msgspec

from streams.models import CommentEvent

_BOM = b"\xef\xbb\xbf"


class BadLine(msgspec.Struct, frozen=True):
    """A line that does not decode to a CommentEvent. `raw` is the line without its line break."""

    line_no: int
    raw: bytes
    reason: str


ParsedLine = CommentEvent | BadLine

_decoder = msgspec.json.Decoder(CommentEvent)


def decode_line(line: bytes) -> CommentEvent:
    """Decode one line; raises ValueError (msgspec.DecodeError or UnicodeDecodeError) if it is bad."""
    try:
        return _decoder.decode(line)
    except RecursionError as exc:
        # msgspec recurses on nesting; a hostile line must not escape as a RuntimeError.
        raise ValueError("JSON is nested too deeply") from exc


def parse_jsonlines(lines: Iterable[bytes], *, source_name: str) -> Iterator[ParsedLine]:
    """Yield a CommentEvent or a BadLine per non-blank line, lazily and in order.

    `source_name` is accepted for symmetry with the other parsers; the line number in BadLine is
    what locates a bad line (1-based, counting blank lines too).
    """
    for line_no, line in enumerate(lines, start=1):
        raw = line.rstrip(b"\r\n")
        data = raw[len(_BOM) :] if line_no == 1 and raw.startswith(_BOM) else raw
        if not data.strip():
            continue
        item: ParsedLine
        try:
            item = decode_line(data)
        # msgspec.DecodeError covers bad JSON and schema errors; invalid UTF-8 inside a string
        # surfaces as UnicodeDecodeError instead. Both are ValueErrors.
        except ValueError as exc:
            item = BadLine(line_no, raw, str(exc))
        yield item
