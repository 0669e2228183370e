"""Disqus XML export: ``<disqus>`` with ``<category>``, ``<thread dsq:id>`` and ``<post dsq:id>``.

- thread: ``disqus:<thread dsq:id>``, titled and linked from its ``<thread>`` element; comment:
  ``disqus:<post dsq:id>``; parent: ``<parent dsq:id>``.
- ``<isSpam>true`` -> ``source_state`` "spam"; ``<isDeleted>true`` -> "deleted" (body emptied: the
  export keeps no text for most); else "visible". Messages are HTML: turned into plain text.
- A post whose thread is not in the export (or that has none) still lands, under
  ``disqus:<dsq:id>`` (or ``disqus:no-thread``) without a title, and a warning names the post; a
  parent that never appears in the file is reported once at the end (the pipeline marks such
  replies ``parent_missing``). Threads are kept in memory (far fewer than posts); posts are not.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterator
from typing import IO

from streams.models import SourceState
from streams.sources.common import (
    ANONYMOUS_AUTHOR,
    BadRecord,
    ParseContext,
    Parsed,
    SourceParseError,
    html_to_text,
    iso_time,
    make_event,
)
from streams.sources.xmlstream import attr, child, child_text, iter_elements, local

SOURCE = "disqus"
_MAX_GAP_IDS = 1_000_000


def _flag(elem: ET.Element, name: str) -> bool:
    return (child_text(elem, name) or "").strip().lower() == "true"


def parse_disqus(opener: Callable[[], IO[bytes]], ctx: ParseContext) -> Iterator[Parsed]:
    threads: dict[str, tuple[str | None, str | None]] = {}  # dsq:id -> (title, link)
    seen_posts: set[str] = set()
    wanted_parents: dict[str, str] = {}  # parent id -> first post naming it
    posts = 0
    for number, (depth, elem) in enumerate(iter_elements(opener, ctx, max_depth=1), start=1):
        name = local(elem.tag)
        if depth == 0:
            if name != "disqus":
                raise_not_disqus(ctx, name)
            continue
        if name == "thread":
            ident = attr(elem, "id")
            if ident:
                title = (child_text(elem, "title") or "").strip() or None
                link = (child_text(elem, "link") or "").strip() or None
                threads[ident] = (title, link)
            continue
        if name != "post":
            continue
        posts += 1
        where = f"post {posts} (element {number})"
        post_id = attr(elem, "id")
        if not post_id:
            yield BadRecord(where, ET.tostring(elem, encoding="utf-8"), "<post> without dsq:id")
            continue
        thread_elem = child(elem, "thread")
        thread_ref = attr(thread_elem, "id") if thread_elem is not None else None
        if not thread_ref:
            ctx.warn(where, f"post {post_id} names no thread; it lands in thread disqus:no-thread")
            thread_key = "no-thread"
            title = link = None
        else:
            thread_key = thread_ref
            known = threads.get(thread_ref)
            if known is None:
                ctx.warn(where, f"post {post_id}: thread {thread_ref} is not in the export (before it); lands untitled")
                title = link = None
            else:
                title, link = known
        parent_elem = child(elem, "parent")
        parent_ref = attr(parent_elem, "id") if parent_elem is not None else None
        author_elem = child(elem, "author")
        author = None
        if author_elem is not None:
            author = (child_text(author_elem, "name") or "").strip() or (child_text(author_elem, "username") or "")
        created = child_text(elem, "createdAt")
        try:
            posted_at = iso_time(created)
        except ValueError as exc:
            yield BadRecord(where, ET.tostring(elem, encoding="utf-8"), f"post {post_id}: <createdAt>: {exc}")
            continue
        spam, deleted = _flag(elem, "isSpam"), _flag(elem, "isDeleted")
        state: SourceState = "spam" if spam else "deleted" if deleted else "visible"
        message = child_text(elem, "message") or ""
        if len(seen_posts) < _MAX_GAP_IDS:
            seen_posts.add(post_id)
            if parent_ref and parent_ref not in seen_posts and len(wanted_parents) < _MAX_GAP_IDS:
                wanted_parents.setdefault(parent_ref, post_id)
        yield make_event(
            source=SOURCE,
            thread_id=f"disqus:{thread_key}",
            thread_title=title,
            comment_id=f"disqus:{post_id}",
            parent_id=f"disqus:{parent_ref}" if parent_ref else None,
            author=author or ANONYMOUS_AUTHOR,
            posted_at=posted_at,
            body="" if deleted else html_to_text(message),
            url=link,
            source_state=state,
        )
    missing = [p for p in wanted_parents if p not in seen_posts]
    if missing:
        shown = ", ".join(f"{p} (named by post {wanted_parents[p]})" for p in missing[:5])
        more = f" and {len(missing) - 5} more" if len(missing) > 5 else ""
        ctx.warn("", f"{len(missing)} parent post(s) not in the export: {shown}{more}")


def raise_not_disqus(ctx: ParseContext, name: str) -> None:
    raise SourceParseError(f"{ctx.source_name}: root element is <{name}>, not <disqus> (not a Disqus export)")
