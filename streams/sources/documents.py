"""Whole-document JSON exports: a Discourse topic, a Commento export, a Mastodon status context.

These are API pages or site exports of one JSON document each, read whole (they are not dumps).
Errors name the record ("post 3", "comment 2", "descendants[1]").

Discourse (``/t/<id>.json``): thread ``discourse:<topic id>``, comment
``discourse:<topic id>/<post_number>`` (so ``reply_to_post_number`` names the parent without a
lookup), ``cooked`` HTML as text, author ``username``; ``deleted_at``/``user_deleted`` ->
"deleted", ``hidden`` -> "hidden", else "visible"; post 1 is ``source_kind`` "topic", post types
2/3/4 are "moderator_action"/"small_action"/"whisper"; an edited post (version > 1) carries
``updated_at`` as its edit time.

Commento (``commento export``): thread ``commento:<domain><url>``, comment ``commento:<commentHex>``,
parent ``parentHex`` ("root": none), author from ``commenters[]`` ("anonymous": Anonymous);
``state`` approved/unapproved/flagged -> "visible"/"pending"/"spam", ``deleted`` -> "deleted".

Mastodon (``GET /api/v1/statuses/:id/context``: ``{"ancestors": [...], "descendants": [...]}``, or
a list of statuses, or one): ids are the server's own, so comment ``mastodon:<server>/<id>`` where
the server is the host of a local account's status (``acct`` without "@"); parent
``in_reply_to_id``; the thread is the conversation's root (the first ancestor, else the status the
descendants answer). Content HTML as text, with the content warning (``spoiler_text``) first.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import orjson

from streams.models import SourceState
from streams.sources.common import (
    ANONYMOUS_AUTHOR,
    DELETED_AUTHOR,
    BadRecord,
    ParseContext,
    Parsed,
    SourceParseError,
    html_to_text,
    iso_time,
    make_event,
    record_bytes,
)

_DISCOURSE_KINDS = {2: "moderator_action", 3: "small_action", 4: "whisper"}
_COMMENTO_STATES: dict[str, SourceState] = {"approved": "visible", "unapproved": "pending", "flagged": "spam"}


def load_document(data: bytes, ctx: ParseContext) -> Any:
    try:
        return orjson.loads(data.removeprefix(b"\xef\xbb\xbf"))
    except orjson.JSONDecodeError as exc:
        # orjson reports "line L column C (char N)" in its message.
        raise SourceParseError(f"{ctx.source_name}: not a JSON document: {exc}") from exc


def _record_error(exc: Exception) -> str:
    return f"missing field {exc}" if isinstance(exc, KeyError) else str(exc)


# -- Discourse ----------------------------------------------------------------------------------


def parse_discourse(data: bytes, ctx: ParseContext) -> Iterator[Parsed]:
    doc = load_document(data, ctx)
    if not isinstance(doc, dict) or not isinstance(doc.get("post_stream"), dict):
        raise SourceParseError(f"{ctx.source_name}: not a Discourse topic (no 'post_stream')")
    posts = doc["post_stream"].get("posts")
    if not isinstance(posts, list):
        raise SourceParseError(f"{ctx.source_name}: 'post_stream' has no 'posts' list")
    title = doc.get("title") if isinstance(doc.get("title"), str) else None
    slug = doc.get("slug")
    for idx, post in enumerate(posts, start=1):
        where = f"post {idx}"
        raw = record_bytes(post)
        try:
            if not isinstance(post, dict):
                raise ValueError("not an object")
            topic = post.get("topic_id", doc.get("id"))
            if topic is None:
                raise ValueError("no topic_id")
            number = int(post["post_number"])
            reply_to = post.get("reply_to_post_number")
            deleted = bool(post.get("deleted_at")) or post.get("user_deleted") is True
            state: SourceState = "deleted" if deleted else "hidden" if post.get("hidden") is True else "visible"
            posted_at = iso_time(post["created_at"])
            version = post.get("version")
            edited_at = None
            if isinstance(version, int) and version > 1:
                edited_at = iso_time(post.get("last_edited_at") or post["updated_at"])
            kind = "topic" if number == 1 else _DISCOURSE_KINDS.get(post.get("post_type", 1))
            url = f"/t/{slug}/{topic}/{number}" if isinstance(slug, str) else None
            yield make_event(
                source="discourse",
                thread_id=f"discourse:{topic}",
                thread_title=title,
                comment_id=f"discourse:{topic}/{number}",
                parent_id=f"discourse:{topic}/{int(reply_to)}" if reply_to else None,
                author=post.get("username") or post.get("name") or DELETED_AUTHOR,
                posted_at=posted_at,
                edited_at=edited_at,
                body="" if deleted else html_to_text(str(post.get("cooked") or "")),
                url=url,
                source_state=state,
                source_kind=kind,
            )
        except (KeyError, ValueError, TypeError) as exc:
            yield BadRecord(where, raw, f"not a Discourse post: {_record_error(exc)}")


# -- Commento -----------------------------------------------------------------------------------


def parse_commento(data: bytes, ctx: ParseContext) -> Iterator[Parsed]:
    doc = load_document(data, ctx)
    if not isinstance(doc, dict) or not isinstance(doc.get("comments"), list):
        raise SourceParseError(f"{ctx.source_name}: not a Commento export (no 'comments' list)")
    names: dict[str, str] = {}
    commenters = doc.get("commenters")
    if commenters is not None and not isinstance(commenters, list):
        ctx.warn("", f"'commenters' is not a list ({type(commenters).__name__}); authors are commenter ids")
        commenters = None
    for commenter in commenters or []:
        if isinstance(commenter, dict) and isinstance(commenter.get("commenterHex"), str):
            names[commenter["commenterHex"]] = str(commenter.get("name") or "")
    for idx, comment in enumerate(doc["comments"], start=1):
        where = f"comment {idx}"
        raw = record_bytes(comment)
        try:
            if not isinstance(comment, dict):
                raise ValueError("not an object")
            ident = str(comment["commentHex"])
            commenter = str(comment.get("commenterHex") or "anonymous")
            if commenter == "anonymous":
                author = ANONYMOUS_AUTHOR
            else:
                author = names.get(commenter) or ""
                if not author:
                    ctx.warn(where, f"commenter {commenter[:12]} is not in 'commenters'")
                    author = f"commenter-{commenter[:12]}"
            deleted = comment.get("deleted") is True
            raw_state = str(comment.get("state") or "approved")
            state: SourceState | None = "deleted" if deleted else _COMMENTO_STATES.get(raw_state)
            if state is None:
                ctx.warn(where, f"unknown state {raw_state!r}; source_state left empty")
            parent = str(comment.get("parentHex") or "root")
            domain, path = str(comment.get("domain") or ""), str(comment.get("url") or "")
            text = str(comment.get("markdown") or "") or html_to_text(str(comment.get("html") or ""))
            yield make_event(
                source="commento",
                thread_id=f"commento:{domain}{path}",
                comment_id=f"commento:{ident}",
                parent_id=None if parent == "root" else f"commento:{parent}",
                author=author,
                posted_at=iso_time(comment["creationDate"]),
                body="" if deleted else text,
                url=f"https://{domain}{path}" if domain else None,
                source_state=state,
            )
        except (KeyError, ValueError, TypeError) as exc:
            yield BadRecord(where, raw, f"not a Commento comment: {_record_error(exc)}")


# -- Mastodon -----------------------------------------------------------------------------------


def _statuses(doc: Any, ctx: ParseContext) -> list[tuple[str, Any]]:
    if isinstance(doc, dict) and ("ancestors" in doc or "descendants" in doc):
        out: list[tuple[str, Any]] = []
        for part in ("ancestors", "descendants"):
            items = doc.get(part) or []
            if not isinstance(items, list):
                raise SourceParseError(f"{ctx.source_name}: '{part}' is not a list")
            out.extend((f"{part}[{i}]", s) for i, s in enumerate(items))
        return out
    if isinstance(doc, list):
        return [(f"[{i}]", s) for i, s in enumerate(doc)]
    if isinstance(doc, dict) and "id" in doc and "content" in doc:
        return [("status", doc)]
    raise SourceParseError(f"{ctx.source_name}: not a Mastodon context, status list or status")


def parse_mastodon(data: bytes, ctx: ParseContext) -> Iterator[Parsed]:
    statuses = _statuses(load_document(data, ctx), ctx)
    server = ""
    for _, status in statuses:
        if isinstance(status, dict) and isinstance(status.get("account"), dict):
            acct = str(status["account"].get("acct") or "")
            if acct and "@" not in acct:
                server = urlsplit(str(status.get("uri") or status.get("url") or "")).netloc
                break
    prefix = f"mastodon:{server}/" if server else "mastodon:"
    ids = {str(s.get("id")) for _, s in statuses if isinstance(s, dict)}
    root = next(
        (str(s["id"]) for _, s in statuses if isinstance(s, dict) and s.get("in_reply_to_id") is None and "id" in s),
        None,
    )
    if root is None:
        root = next(
            (
                str(s.get("in_reply_to_id"))
                for _, s in statuses
                if isinstance(s, dict) and str(s.get("in_reply_to_id")) not in ids
            ),
            None,
        )
    for where, status in statuses:
        raw = record_bytes(status)
        try:
            if not isinstance(status, dict):
                raise ValueError("not an object")
            ident = str(status["id"])
            account = status.get("account")
            account = account if isinstance(account, dict) else {}
            author = account.get("acct") or account.get("username") or DELETED_AUTHOR
            content = html_to_text(str(status.get("content") or ""))
            warning = str(status.get("spoiler_text") or "").strip()
            body = f"CW: {warning}\n\n{content}" if warning else content
            parent = status.get("in_reply_to_id")
            edited = status.get("edited_at")
            yield make_event(
                source="mastodon",
                thread_id=prefix + (root or ident),
                comment_id=prefix + ident,
                parent_id=prefix + str(parent) if parent is not None else None,
                author=str(author),
                posted_at=iso_time(status["created_at"]),
                edited_at=iso_time(edited) if edited else None,
                body=body,
                url=str(status.get("url") or status.get("uri") or "") or None,
                source_state="visible",
            )
        except (KeyError, ValueError, TypeError) as exc:
            yield BadRecord(where, raw, f"not a Mastodon status: {_record_error(exc)}")
