"""WordPress WXR export (RSS 2.0 with the ``wp:`` namespace): ``<item>`` posts with ``<wp:comment>``s.

- thread: ``wordpress:<site host>/<wp:post_id>`` titled by the item's ``<title>``; comment:
  ``wordpress:<site host>/comment/<wp:comment_id>``; parent: ``wp:comment_parent`` (0 = none).
- ``wp:comment_approved``: ``1`` -> ``source_state`` "visible", ``0`` -> "pending", ``spam`` ->
  "spam", ``trash``/``post-trashed`` -> "removed". Every comment lands, whatever its state.
- ``wp:comment_type`` ``pingback``/``trackback`` -> ``source_kind`` of that name (kept, not dropped).
- Time: ``wp:comment_date_gmt``; when that is missing or ``0000-00-00 00:00:00`` (drafts, old
  imports), ``wp:comment_date`` read in ``--tz`` (the site's zone).
- ``wp:comment_content`` is the HTML WordPress stores: turned into plain text, entities decoded.
- Undeclared namespace prefixes (which strict parsers reject) are tolerated with a warning.
"""

from __future__ import annotations

import html
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import IO
from urllib.parse import urlsplit

from streams.models import SourceState
from streams.sources.common import ANONYMOUS_AUTHOR, BadRecord, ParseContext, Parsed, html_to_text, make_event
from streams.sources.xmlstream import child_text, iter_elements, local

SOURCE = "wordpress"
_STATES: dict[str, SourceState] = {
    "1": "visible",
    "approve": "visible",
    "approved": "visible",
    "0": "pending",
    "hold": "pending",
    "spam": "spam",
    "trash": "removed",
    "post-trashed": "removed",
}
_KINDS = frozenset({"pingback", "trackback"})
_ZERO_DATE = "0000-00-00 00:00:00"


def _wp_time(text: str, ctx: ParseContext) -> datetime:
    return datetime.strptime(text.strip(), "%Y-%m-%d %H:%M:%S").replace(tzinfo=ctx.zone)


def parse_wordpress(opener: Callable[[], IO[bytes]], ctx: ParseContext) -> Iterator[Parsed]:
    site = "unknown-site"
    items = comments = 0
    for number, (depth, elem) in enumerate(iter_elements(opener, ctx, max_depth=2), start=1):
        name = local(elem.tag)
        if depth == 2 and name in ("base_site_url", "link") and elem.text and site == "unknown-site":
            site = urlsplit(elem.text.strip()).netloc or elem.text.strip()
            continue
        if depth != 2 or name != "item":
            continue
        items += 1
        post_id = (child_text(elem, "post_id") or "").strip()
        title = html.unescape((child_text(elem, "title") or "").strip()) or None
        link = (child_text(elem, "link") or "").strip() or None
        for c in elem:
            if local(c.tag) != "comment":
                continue
            comments += 1
            where = f"comment {comments} (item {items}, element {number})"
            if not post_id:
                yield BadRecord(where, ET.tostring(c, encoding="utf-8"), "its <item> has no <wp:post_id>")
                continue
            comment_id = (child_text(c, "comment_id") or "").strip()
            if not comment_id:
                yield BadRecord(where, ET.tostring(c, encoding="utf-8"), "<wp:comment> without <wp:comment_id>")
                continue
            approved = (child_text(c, "comment_approved") or "1").strip().lower()
            state = _STATES.get(approved)
            if state is None:
                ctx.warn(where, f"unknown comment_approved {approved!r}; source_state left empty")
            kind = (child_text(c, "comment_type") or "").strip().lower()
            gmt = (child_text(c, "comment_date_gmt") or "").strip()
            try:
                if gmt and gmt != _ZERO_DATE:
                    posted_at = datetime.strptime(gmt, "%Y-%m-%d %H:%M:%S").replace(tzinfo=UTC)
                else:
                    posted_at = _wp_time(child_text(c, "comment_date") or "", ctx)
            except ValueError as exc:
                yield BadRecord(
                    where, ET.tostring(c, encoding="utf-8"), f"comment {comment_id}: bad comment date: {exc}"
                )
                continue
            parent = (child_text(c, "comment_parent") or "0").strip()
            yield make_event(
                source=SOURCE,
                thread_id=f"wordpress:{site}/{post_id}",
                thread_title=title,
                comment_id=f"wordpress:{site}/comment/{comment_id}",
                parent_id=f"wordpress:{site}/comment/{parent}" if parent not in ("", "0") else None,
                author=child_text(c, "comment_author") or ANONYMOUS_AUTHOR,
                posted_at=posted_at,
                body=html_to_text(child_text(c, "comment_content") or ""),
                url=f"{link}#comment-{comment_id}" if link else None,
                source_state=state,
                source_kind=kind if kind in _KINDS else None,
            )
