"""Errors on bad input files name the right line and cause: truncated headers, UTF-16 files."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from streams.sources.encoding import encoding_problem
from streams.sources.registry import SourceError, parse_source
from streams.sources.threaddump import ThreadDumpError, parse_thread_dump

DUMP = """Title

Article text.

Alice Tue, 03/20/2018 - 13:30 Permalink

Hello there.

{header}

Reply body.

In reply to by Alice
Carol Tue, 03/20/2018 - 13:50 Permalink

third
"""
HEADER_LINE = 9


@pytest.mark.parametrize(
    "header",
    [
        "Bob Alice Tue, 03/20/2018 - 13:45",
        "Bob Alice Tue, 03/20/2018 - 13:4",
        "Bob Alice Tue, 03/20/2018 - 1",
        "Bob Alice Tue, 03/20/2018 -",
        "Bob Alice Tue, 03/20/2018 - 13:45 Perma",
        "Bob Alice Tue, 03/20/2018",  # cut within the date: found through the error it causes
        "Bob Alice Tue, 03/2",
    ],
)
def test_a_truncated_reply_header_is_named_on_its_own_line(header: str) -> None:
    # Before: "line 5: header names 'Alice' do not end with the footer's parent author".
    with pytest.raises(ThreadDumpError, match=rf"^x\.txt: line {HEADER_LINE}: comment header is truncated") as info:
        parse_thread_dump(DUMP.format(header=header), source_name="x.txt")
    assert info.value.line_no == HEADER_LINE
    assert header in str(info.value)


def test_a_truncated_top_level_header_is_not_swallowed_as_body_text() -> None:
    text = DUMP.format(header="Bob Tue, 03/20/2018 - 13:4").replace("In reply to by Alice\n", "")
    with pytest.raises(ThreadDumpError, match=rf"line {HEADER_LINE}: comment header is truncated"):
        parse_thread_dump(text, source_name="x.txt")
    # Cut within the date it could be prose: kept, with a warning on that line.
    text = DUMP.format(header="Bob Tue, 03/20").replace("In reply to by Alice\n", "")
    dump = parse_thread_dump(text, source_name="x.txt")
    assert len(dump.comments) == 2
    assert any(f"line {HEADER_LINE}:" in w and "truncated comment header" in w for w in dump.warnings)


def test_prose_with_dates_is_still_body_text() -> None:
    text = DUMP.format(header="Bob Alice Tue, 03/20/2018 - 13:45 Permalink").replace(
        "Reply body.", "We met on Tue, 03/20/2018 - at noon, or Wed, 03/21 - 13:45 maybe."
    )
    dump = parse_thread_dump(text, source_name="x.txt")
    assert len(dump.comments) == 3 and not dump.warnings


# ---------------------------------------------------------------------------------------- UTF-16

TEXT = "Title\n\nArticle.\n\nAlice Tue, 03/20/2018 - 13:30 Permalink\n\nHello.\n"


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (TEXT.encode("utf-16"), "looks like UTF-16 (little-endian, with a byte-order mark)"),
        (b"\xfe\xff" + TEXT.encode("utf-16-be"), "looks like UTF-16 (big-endian, with a byte-order mark)"),
        (TEXT.encode("utf-16-le"), "looks like UTF-16 (little-endian, no byte-order mark)"),
        (TEXT.encode("utf-16-be"), "looks like UTF-16 (big-endian, no byte-order mark)"),
        (TEXT.encode("utf-32"), "looks like UTF-32"),
    ],
)
def test_utf16_and_utf32_are_recognised(data: bytes, expected: str) -> None:
    problem = encoding_problem(data, "in.txt")
    assert problem is not None and problem.startswith(expected)
    assert "convert with iconv -f UTF-" in problem and "-t UTF-8 in.txt > in.txt.utf8" in problem


@pytest.mark.parametrize("data", [TEXT.encode(), "Ünïcödé — ✓ 日本語\n".encode(), b"", b"{", b'{"a": 1}\n'])
def test_utf8_is_not_flagged(data: bytes) -> None:
    assert encoding_problem(data) is None


@pytest.mark.parametrize("name", ["dump.txt", "events.jsonl"])
def test_parse_source_says_how_to_convert(tmp_path: Path, name: str) -> None:
    path = tmp_path / name
    path.write_bytes(TEXT.encode("utf-16"))
    with pytest.raises(SourceError, match=r"looks like UTF-16 .*convert with iconv -f UTF-16 -t UTF-8"):
        parse_source(path)


def test_streams_parse_prints_the_hint(tmp_path: Path) -> None:
    path = tmp_path / "dump.txt"
    path.write_bytes(TEXT.encode("utf-16-le"))
    env = {k: v for k, v in os.environ.items() if not k.startswith("STREAMS_")}
    done = subprocess.run(
        [sys.executable, "-m", "streams.cli", "parse", str(path)], capture_output=True, env=env, timeout=120
    )
    assert done.returncode == 1
    assert "looks like UTF-16 (little-endian" in done.stderr.decode()
    assert "iconv -f UTF-16LE -t UTF-8" in done.stderr.decode()
