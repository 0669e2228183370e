"""Moderator reviews of our flags: the checks on a review and its `moderation_reviews` row (pure).

A moderator's verdict on one comment and one category:

- ``confirm``: the comment is flagged in the category and rightly so;
- ``reject``: it is flagged in the category and should not be (a false positive);
- ``missed``: it is not flagged in the category and should be (a false negative).

So precision = confirmed / (confirmed + rejected) and recall = confirmed / (confirmed + missed)
(schemas/queries/review_precision_recall.sql). A verdict that contradicts the comment's current
flags (confirming a flag it does not have, calling a flag missed that it has) is refused: it would
count against the wrong side of those ratios.

The worker's POST /reviews (streams/agents/web.py) uses these functions; `streams review` posts
there. One row per (thread, comment, category, reviewer): `review_id` is a hash of those, and the
table's ReplacingMergeTree keeps the latest `reviewed_at`, so posting the same review twice leaves
one row and a changed verdict replaces the older one.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from streams.enrich.flags import CATEGORIES
from streams.models import MAX_ID_BYTES, MAX_NAME_BYTES

VERDICTS: tuple[str, ...] = ("confirm", "reject", "missed")
#: Columns of `moderation_reviews` (schemas/clickhouse/0005_moderation_reviews.sql), row order.
REVIEW_COLUMNS: tuple[str, ...] = (
    "review_id",
    "thread_id",
    "comment_id",
    "category",
    "verdict",
    "reviewer",
    "note",
    "model_version",
    "reviewed_at",
)
MAX_NOTE_BYTES = 4096
#: Who reviewed when the request does not say (the API token is shared: the name is self-declared).
DEFAULT_REVIEWER = "unknown"
_FIELDS = frozenset({"comment_id", "verdict", "category", "reviewer", "note", "thread_id"})

#: The comment's current row (FINAL: latest version, deleted ones hidden); two rows mean the id is
#: used in more than one thread and the request must name the thread.
LOOKUP_SQL = (
    "SELECT thread_id, flags, model_version FROM comments FINAL "
    "WHERE comment_id = {comment_id:String} AND ({thread_id:String} = '' OR thread_id = {thread_id:String}) "
    "ORDER BY thread_id LIMIT 2"
)


class ReviewError(ValueError):
    """A review the endpoint refuses: HTTP status and a one-line reason."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status


@dataclass(frozen=True)
class ReviewRequest:
    comment_id: str
    verdict: str
    category: str
    reviewer: str = DEFAULT_REVIEWER
    note: str = ""
    #: Needed only when the comment id exists in more than one thread.
    thread_id: str = ""


@dataclass(frozen=True)
class ReviewedComment:
    """What a review needs of the comment's current row."""

    thread_id: str
    flags: tuple[str, ...]
    model_version: str


def _text(body: Mapping[str, Any], key: str, *, required: bool, max_bytes: int, default: str = "") -> str:
    value = body.get(key)
    if value is None:
        if required:
            raise ReviewError(400, f'"{key}" is required')
        return default
    if not isinstance(value, str):
        raise ReviewError(400, f'"{key}" must be a string, got {type(value).__name__}')
    value = value.strip()
    if required and not value:
        raise ReviewError(400, f'"{key}" must not be empty')
    if len(value.encode()) > max_bytes:
        raise ReviewError(400, f'"{key}" is longer than {max_bytes} bytes')
    return value


def parse_review(body: Mapping[str, Any]) -> ReviewRequest:
    """The review in a POST /reviews body, or ReviewError(400) naming what is wrong."""
    unknown = sorted(set(body) - _FIELDS)
    if unknown:
        raise ReviewError(400, f"unknown field(s) {', '.join(unknown)} (fields: {', '.join(sorted(_FIELDS))})")
    comment_id = _text(body, "comment_id", required=True, max_bytes=MAX_ID_BYTES)
    verdict = _text(body, "verdict", required=True, max_bytes=64).lower()
    if verdict not in VERDICTS:
        raise ReviewError(400, f"unknown verdict {verdict!r}: one of {', '.join(VERDICTS)}")
    category = _text(body, "category", required=True, max_bytes=64).lower()
    if category not in CATEGORIES:
        raise ReviewError(400, f"unknown category {category!r}: one of {', '.join(CATEGORIES)}")
    reviewer = _text(body, "reviewer", required=False, max_bytes=MAX_NAME_BYTES) or DEFAULT_REVIEWER
    note = _text(body, "note", required=False, max_bytes=MAX_NOTE_BYTES)
    thread_id = _text(body, "thread_id", required=False, max_bytes=MAX_ID_BYTES)
    return ReviewRequest(comment_id, verdict, category, reviewer, note, thread_id)


def reviewed_comment(request: ReviewRequest, rows: Sequence[Sequence[Any]]) -> ReviewedComment:
    """The comment a review is about, from the rows of `LOOKUP_SQL`: 404 when none, 400 when ambiguous."""
    where = f" in thread {request.thread_id!r}" if request.thread_id else ""
    if not rows:
        raise ReviewError(404, f"unknown comment_id {request.comment_id!r}{where} (not landed yet, or deleted)")
    if len(rows) > 1:
        raise ReviewError(400, f"comment_id {request.comment_id!r} is in more than one thread: send thread_id")
    thread_id, flags, model_version = rows[0][:3]
    return ReviewedComment(str(thread_id), tuple(str(f) for f in flags or ()), str(model_version or ""))


def check_verdict(request: ReviewRequest, comment: ReviewedComment) -> None:
    """ReviewError(409) when the verdict contradicts the comment's current flags."""
    flagged = request.category in comment.flags
    if request.verdict in ("confirm", "reject") and not flagged:
        raise ReviewError(
            409,
            f"comment {request.comment_id!r} is not flagged as {request.category}: "
            f"{request.verdict} reviews a flag; a flag that should be there is 'missed'",
        )
    if request.verdict == "missed" and flagged:
        raise ReviewError(
            409, f"comment {request.comment_id!r} is flagged as {request.category}: confirm or reject that flag"
        )


def review_id(thread_id: str, comment_id: str, category: str, reviewer: str) -> str:
    """Stable id of one reviewer's verdict slot on one comment and category."""
    key = "\x1f".join((thread_id, comment_id, category, reviewer))
    return hashlib.sha256(key.encode()).hexdigest()[:20]


def review_row(request: ReviewRequest, comment: ReviewedComment, reviewed_at: datetime | None = None) -> list[Any]:
    """The `moderation_reviews` row (REVIEW_COLUMNS order)."""
    at = reviewed_at or datetime.now(UTC)
    return [
        review_id(comment.thread_id, request.comment_id, request.category, request.reviewer),
        comment.thread_id,
        request.comment_id,
        request.category,
        request.verdict,
        request.reviewer,
        request.note,
        comment.model_version,
        at,
    ]


def review_record(row: Sequence[Any]) -> dict[str, Any]:
    """A review row as the JSON object the endpoint answers with (times in ISO 8601, UTC)."""
    record = dict(zip(REVIEW_COLUMNS, row, strict=True))
    at = record["reviewed_at"]
    if isinstance(at, datetime):
        record["reviewed_at"] = (at if at.tzinfo is not None else at.replace(tzinfo=UTC)).isoformat()
    return record
