"""Hacker News: Firebase API items (one per line, or a JSON array) and Algolia search hits.

- Firebase items: ``{"id", "type", "by", "time", "text", "parent", "kids", "deleted", "dead"}``. A
  story (also job, poll) is the thread root and an event of its own (``source_kind`` "story", ...);
  a comment names only its `parent`, so the parser keeps the thread of the items it has seen
  (bounded: the last `_ROOTS_KEPT`) and a comment whose ancestors it has not seen gets its parent's
  id as thread, with a warning. Dumps ordered by id (as the API numbers them) always resolve.
- Algolia hits (``objectID``, ``comment_text``, ``story_id``, ``parent_id``, ``created_at_i``), one
  per line or a search response ``{"hits": [...]}`` per line: the thread is ``story_id``.
- ``deleted: true`` -> ``source_state`` "deleted" (HN keeps neither author nor text: author
  ``[deleted]``, body empty); ``dead: true`` (killed by flags or moderators, shown only with
  showdead) -> "hidden" with its text kept. HTML in ``text`` becomes plain text.
- A comment directly under the story is top level (no parent), as on Reddit.
"""

from __future__ import annotations

import html
from collections import OrderedDict
from collections.abc import Iterable, Iterator
from typing import Any

import orjson

from streams.models import CommentEvent, SourceState
from streams.sources.common import (
    DELETED_AUTHOR,
    BadRecord,
    ParseContext,
    Parsed,
    epoch,
    html_to_text,
    iso_time,
    make_event,
    record_bytes,
)

SOURCE = "hackernews"
_ROOTS_KEPT = 2_000_000
_STORY_TYPES = frozenset({"story", "job", "poll"})


class _Roots:
    """item id -> story id for the last `limit` items seen (memory stays bounded on any dump)."""

    def __init__(self, limit: int = _ROOTS_KEPT) -> None:
        self.limit = limit
        self._roots: OrderedDict[int, int] = OrderedDict()

    def get(self, item_id: int) -> int | None:
        return self._roots.get(item_id)

    def put(self, item_id: int, root: int) -> None:
        self._roots[item_id] = root
        if len(self._roots) > self.limit:
            self._roots.popitem(last=False)


def _hn_id(value: object) -> int:
    if isinstance(value, bool):
        raise ValueError(f"bad id {value!r}")
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.strip().isdigit():
        return int(value)
    raise ValueError(f"bad id {value!r}")


def _url(item_id: int) -> str:
    return f"https://news.ycombinator.com/item?id={item_id}"


def firebase_event(obj: dict[str, Any], roots: _Roots, ctx: ParseContext, where: str) -> CommentEvent:
    item_id = _hn_id(obj["id"])
    kind = obj.get("type", "comment")
    if not isinstance(kind, str):
        raise ValueError(f"bad type {kind!r}")
    deleted = obj.get("deleted") is True
    state: SourceState = "deleted" if deleted else "hidden" if obj.get("dead") is True else "visible"
    text = obj.get("text")
    body = "" if deleted or not isinstance(text, str) else html_to_text(text)
    author = obj.get("by") or DELETED_AUTHOR
    posted_at = epoch(obj["time"])
    if kind in _STORY_TYPES:
        roots.put(item_id, item_id)
        title = obj.get("title")
        return make_event(
            source=SOURCE,
            thread_id=f"hn:{item_id}",
            thread_title=html.unescape(title) if isinstance(title, str) else None,
            comment_id=f"hn:{item_id}",
            author=str(author),
            posted_at=posted_at,
            body=body,
            url=obj.get("url") if isinstance(obj.get("url"), str) else _url(item_id),
            source_state=state,
            source_kind=kind,
        )
    if "parent" not in obj:
        raise ValueError(f"a {kind} without 'parent'")
    parent = _hn_id(obj["parent"])
    root = roots.get(parent)
    if root is None:
        ctx.warn(where, f"item {item_id}: story of parent {parent} not seen before it; thread set to hn:{parent}")
        root = parent
    roots.put(item_id, root)
    return make_event(
        source=SOURCE,
        thread_id=f"hn:{root}",
        comment_id=f"hn:{item_id}",
        parent_id=None if parent == root else f"hn:{parent}",
        author=str(author),
        posted_at=posted_at,
        body=body,
        url=_url(item_id),
        source_state=state,
        source_kind=None if kind == "comment" else kind,
    )


def algolia_event(obj: dict[str, Any]) -> CommentEvent:
    item_id = _hn_id(obj["objectID"])
    created = obj.get("created_at_i")
    posted_at = epoch(created) if created is not None else iso_time(obj.get("created_at"))
    tags = obj.get("_tags") or []
    comment_text = obj.get("comment_text")
    author = obj.get("author") or DELETED_AUTHOR
    is_comment = isinstance(comment_text, str) or "comment" in tags
    if not is_comment:
        story_text = obj.get("story_text")
        return make_event(
            source=SOURCE,
            thread_id=f"hn:{item_id}",
            thread_title=obj.get("title") if isinstance(obj.get("title"), str) else None,
            comment_id=f"hn:{item_id}",
            author=str(author),
            posted_at=posted_at,
            body=html_to_text(story_text) if isinstance(story_text, str) else "",
            url=obj.get("url") if isinstance(obj.get("url"), str) else _url(item_id),
            source_state="visible",
            source_kind="story",
        )
    story = _hn_id(obj["story_id"])
    parent = _hn_id(obj["parent_id"]) if obj.get("parent_id") is not None else story
    title = obj.get("story_title")
    return make_event(
        source=SOURCE,
        thread_id=f"hn:{story}",
        thread_title=title if isinstance(title, str) else None,
        comment_id=f"hn:{item_id}",
        parent_id=None if parent == story else f"hn:{parent}",
        author=str(author),
        posted_at=posted_at,
        body=html_to_text(comment_text) if isinstance(comment_text, str) else "",
        url=_url(item_id),
        source_state="visible",
    )


def _objects(lines: Iterable[tuple[int, bytes]]) -> Iterator[tuple[str, bytes, Any]]:
    """(where, raw bytes, decoded value or an exception) for each record: lines, or one JSON array."""
    iterator = iter(lines)
    for line_no, raw in iterator:
        if line_no == 1 and raw.lstrip().startswith(b"[") and not raw.rstrip().endswith((b"]", b"},")):
            # A pretty-printed JSON array: read it whole (the API's arrays are pages, not dumps).
            whole = b"\n".join([raw, *(r for _, r in iterator)])
            yield from _array_items(whole, "line 1")
            return
        try:
            value = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            yield f"line {line_no}", raw, exc
            continue
        if isinstance(value, list):
            yield from _array_items(raw, f"line {line_no}", value)
        elif isinstance(value, dict) and isinstance(value.get("hits"), list):
            for idx, hit in enumerate(value["hits"]):
                yield f"line {line_no}, hit {idx + 1}", record_bytes(hit), hit
        else:
            yield f"line {line_no}", raw, value


def _array_items(raw: bytes, where: str, value: Any = None) -> Iterator[tuple[str, bytes, Any]]:
    if value is None:
        try:
            value = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            yield where, raw, exc
            return
    if not isinstance(value, list):
        yield where, raw, ValueError("expected a JSON array")
        return
    for idx, item in enumerate(value):
        yield f"{where}, item {idx + 1}", record_bytes(item), item


def parse_hackernews(lines: Iterable[tuple[int, bytes]], ctx: ParseContext) -> Iterator[Parsed]:
    roots = _Roots()
    for where, raw, value in _objects(lines):
        if isinstance(value, Exception):
            yield BadRecord(where, raw, f"not JSON: {value}")
            continue
        if not isinstance(value, dict):
            yield BadRecord(where, raw, f"expected a JSON object, got {type(value).__name__}")
            continue
        try:
            yield algolia_event(value) if "objectID" in value else firebase_event(value, roots, ctx, where)
        except (KeyError, ValueError, TypeError) as exc:
            reason = f"missing field {exc}" if isinstance(exc, KeyError) else str(exc)
            yield BadRecord(where, raw, f"not a Hacker News item: {reason}")
