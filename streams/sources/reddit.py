"""Reddit dump lines (Pushshift / Arctic Shift NDJSON): comments (t1) and submissions (t3).

Mapping (documented in the README):
- a comment's thread is its `link_id` (``reddit:t3_...``); its parent is `parent_id` when that is a
  comment (``t1_``), none when it is the submission (a top-level comment);
- a submission is an event of its own (``source_kind`` "submission", the title as thread title, the
  self text as body), with the thread id its comments carry;
- a body of exactly ``[deleted]`` (the author deleted it) gives ``source_state`` "deleted", one of
  ``[removed]`` (a moderator or Reddit removed it) "removed"; the placeholder is not kept as text
  (the body is empty) and the author stays as the dump has it (often ``[deleted]``). Such a comment
  is still a ``comment.created`` event, a redacted one: its replies keep their parent and the row is
  not hidden the way a ``comment.deleted`` event hides it. ``spam: true`` gives "spam";
  a submission's ``removed_by_category`` gives "deleted" (by the author) or "removed";
- ``created_utc`` may be an int, a float or a numeric string; ``edited`` is false or an epoch;
- Reddit escapes ``&``, ``<`` and ``>`` in bodies and titles as HTML entities: they are decoded.
"""

from __future__ import annotations

import html
from collections.abc import Iterable, Iterator
from typing import Any

import orjson

from streams.models import CommentEvent, SourceState
from streams.sources.common import DELETED_AUTHOR, BadRecord, ParseContext, Parsed, epoch, make_event

SOURCE = "reddit"
_PLACEHOLDERS: dict[str, SourceState] = {"[deleted]": "deleted", "[removed]": "removed"}
_AUTHOR_REMOVALS = frozenset({"deleted", "author"})


def _fullname(value: object, prefix: str) -> str:
    text = str(value)
    return text if text.startswith(("t1_", "t3_")) else prefix + text


def _state(obj: dict[str, Any], text: str) -> SourceState:
    placeholder = _PLACEHOLDERS.get(text.strip())
    if placeholder:
        return placeholder
    removed_by = obj.get("removed_by_category")
    if isinstance(removed_by, str) and removed_by:
        return "deleted" if removed_by in _AUTHOR_REMOVALS else "removed"
    if obj.get("spam") is True:
        return "spam"
    return "visible"


def reddit_event(obj: dict[str, Any]) -> CommentEvent:
    """One dump object -> event; KeyError/ValueError/TypeError when a needed field is missing or bad."""
    ident = obj.get("id")
    if not isinstance(ident, str) or not ident:
        raise ValueError("no 'id'")
    created = obj.get("created_utc", obj.get("created"))
    if created is None:
        raise ValueError("no 'created_utc'")
    posted_at = epoch(created)
    edited = obj.get("edited")
    edited_at = epoch(edited) if isinstance(edited, int | float | str) and not isinstance(edited, bool) else None
    if edited_at is not None and edited_at.timestamp() == 0:
        edited_at = None
    author = obj.get("author") or DELETED_AUTHOR
    permalink = obj.get("permalink")
    url = f"https://www.reddit.com{permalink}" if isinstance(permalink, str) and permalink.startswith("/") else None
    name = obj.get("name")
    is_comment = "link_id" in obj or (isinstance(name, str) and name.startswith("t1_")) or "body" in obj
    if is_comment:
        raw_body = obj.get("body")
        text = raw_body if isinstance(raw_body, str) else ""
        state = _state(obj, text)
        link = obj.get("link_id")
        if link is None:
            raise ValueError("comment without 'link_id'")
        parent = obj.get("parent_id")
        parent_full = _fullname(parent, "t1_") if parent else None
        return make_event(
            source=SOURCE,
            thread_id="reddit:" + _fullname(link, "t3_"),
            comment_id="reddit:t1_" + ident,
            parent_id="reddit:" + parent_full if parent_full and parent_full.startswith("t1_") else None,
            author=str(author),
            posted_at=posted_at,
            edited_at=edited_at,
            body="" if state in ("deleted", "removed") and text.strip() in _PLACEHOLDERS else html.unescape(text),
            url=url,
            source_state=state,
        )
    title = obj.get("title")
    if not isinstance(title, str):
        raise ValueError("neither a comment (no 'link_id'/'body') nor a submission (no 'title')")
    raw_self = obj.get("selftext")
    selftext = raw_self if isinstance(raw_self, str) else ""
    state = _state(obj, selftext)
    thread = "reddit:t3_" + ident
    return make_event(
        source=SOURCE,
        thread_id=thread,
        thread_title=html.unescape(title),
        comment_id=thread,
        author=str(author),
        posted_at=posted_at,
        edited_at=edited_at,
        body="" if selftext.strip() in _PLACEHOLDERS else html.unescape(selftext),
        url=url,
        source_state=state,
        source_kind="submission",
    )


def parse_reddit(lines: Iterable[tuple[int, bytes]], ctx: ParseContext) -> Iterator[Parsed]:
    """(line number, line) pairs -> an event or a BadRecord per line, lazily."""
    for line_no, raw in lines:
        where = f"line {line_no}"
        try:
            obj = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            yield BadRecord(where, raw, f"not JSON: {exc}")
            continue
        if not isinstance(obj, dict):
            yield BadRecord(where, raw, f"expected a JSON object, got {type(obj).__name__}")
            continue
        try:
            yield reddit_event(obj)
        except (KeyError, ValueError, TypeError) as exc:
            yield BadRecord(where, raw, f"not a Reddit comment or submission: {exc}")
