"""Streaming XML for exports of any size: elements near the root, cleared once handled.

`iter_elements` yields (depth, element) for every element that ends at depth <= `max_depth`
(the root is depth 0) and then detaches it, so memory holds one record at a time. Real WordPress
exports use namespace prefixes they never declare (a plugin's `<foo:bar>`), which expat rejects
("unbound prefix"): the reader then declares that prefix on the root element as
``urn:undeclared:<prefix>``, warns, and reads again from the start, skipping what it already gave.
"""

from __future__ import annotations

import io
import re
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterator
from typing import IO

from streams.sources.common import ParseContext, SourceParseError

_ROOT_TAG = re.compile(rb"<([A-Za-z_][\w.:-]*)")
_PROLOG = re.compile(rb"\s*(?:<\?.*?\?>\s*|<!--.*?-->\s*|<!DOCTYPE[^>]*>\s*)*", re.S)
_PREFIXED = re.compile(r"([A-Za-z_][\w.-]*):[A-Za-z_]")
_MAX_RETRIES = 32


def local(tag: str) -> str:
    """An element's name without its namespace."""
    return tag.rsplit("}", 1)[-1]


def child_text(elem: ET.Element, name: str) -> str | None:
    """Text of the first direct child with local name `name` ("" when empty), None when absent."""
    for child in elem:
        if local(child.tag) == name:
            return child.text or ""
    return None


def child(elem: ET.Element, name: str) -> ET.Element | None:
    for c in elem:
        if local(c.tag) == name:
            return c
    return None


def attr(elem: ET.Element, name: str) -> str | None:
    """An attribute by local name, whatever its namespace (dsq:id -> "id")."""
    for key, value in elem.attrib.items():
        if local(key) == name:
            return value
    return None


class _Prefixed(io.RawIOBase):
    """The stream with `declarations` inserted into the root element's start tag."""

    def __init__(self, stream: IO[bytes], declarations: bytes) -> None:
        head = stream.read(1 << 16)
        prolog = _PROLOG.match(head)
        start = prolog.end() if prolog else 0
        m = _ROOT_TAG.match(head, start)
        if m is not None:
            head = head[: m.end()] + declarations + head[m.end() :]
        self._head = head
        self._stream = stream

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        if self._head:
            n = min(len(buffer), len(self._head))
            buffer[:n] = self._head[:n]
            self._head = self._head[n:]
            return n
        data = self._stream.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)

    def close(self) -> None:
        self._stream.close()
        super().close()


def _root_declared(opener: Callable[[], IO[bytes]]) -> set[str]:
    with opener() as fh:
        head = fh.read(1 << 16)
    prolog = _PROLOG.match(head)
    m = _ROOT_TAG.match(head, prolog.end() if prolog else 0)
    if m is None:
        return set()
    end = head.find(b">", m.end())
    tag = head[m.start() : end if end > 0 else len(head)].decode("utf-8", "replace")
    return set(re.findall(r"xmlns:([\w.-]+)\s*=", tag))


def _prefix_at(opener: Callable[[], IO[bytes]], line: int, column: int, skip: set[str]) -> str | None:
    with opener() as fh:
        # Universal newlines: expat counts a lone \r as a line break too (XML's end-of-line rule),
        # so splitting on \n alone would look for the prefix on the wrong line.
        for no, text in enumerate(io.TextIOWrapper(fh, encoding="utf-8", errors="replace", newline=None), start=1):
            if no == line:
                tail = text[column:]
                tag = tail.split(">", 1)[0]
                for prefix in map(str, _PREFIXED.findall(tag)):
                    if prefix not in skip and prefix not in ("xml", "xmlns", "http", "https"):
                        return prefix
                return None
    return None


def iter_elements(
    opener: Callable[[], IO[bytes]], ctx: ParseContext, *, max_depth: int
) -> Iterator[tuple[int, ET.Element]]:
    """(depth, element) for each element ending at depth <= max_depth, detached after the caller saw it."""
    added: list[str] = []
    given = 0
    declared: set[str] | None = None
    for _attempt in range(_MAX_RETRIES):
        stream = opener()
        if added:
            decl = "".join(f' xmlns:{p}="urn:undeclared:{p}"' for p in added).encode()
            stream = io.BufferedReader(_Prefixed(stream, decl))
        seen = 0
        stack: list[ET.Element] = []
        try:
            for event, elem in ET.iterparse(stream, events=("start", "end")):
                if event == "start":
                    stack.append(elem)
                    continue
                stack.pop()
                depth = len(stack)
                if depth > max_depth:
                    continue
                seen += 1
                if seen > given:
                    given = seen
                    yield depth, elem
                if stack:
                    # Detach: completed siblings never pile up under the root.
                    stack[-1].remove(elem)
            return
        except LookupError as exc:  # expat: the XML declaration names an encoding Python does not know
            raise SourceParseError(
                f"{ctx.source_name}: unknown character encoding in the XML declaration ({exc})"
            ) from exc
        except ET.ParseError as exc:
            line, column = exc.position
            message = str(exc)
            if "unbound prefix" not in message:
                raise SourceParseError(
                    f"{ctx.source_name}: line {line}, column {column}: not well-formed XML ({message})"
                ) from exc
            if declared is None:
                declared = _root_declared(opener)
            prefix = _prefix_at(opener, line, column, declared | set(added))
            if prefix is None:
                raise SourceParseError(f"{ctx.source_name}: line {line}, column {column}: {message}") from exc
            ctx.warn(
                f"line {line}",
                f"namespace prefix {prefix!r} is used but never declared; read as urn:undeclared:{prefix}",
            )
            added.append(prefix)
        finally:
            stream.close()
    raise SourceParseError(f"{ctx.source_name}: more than {_MAX_RETRIES} undeclared namespace prefixes")
