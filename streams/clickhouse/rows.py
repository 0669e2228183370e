"""Pure mappings from pipeline types to ClickHouse rows (column order matches the lists)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from streams.models import DeadLetter, EnrichedComment

COMMENT_COLUMNS = (
    "thread_id",
    "comment_id",
    "event_id",
    "event_type",
    "source",
    "thread_title",
    "parent_id",
    "parent_author",
    "author",
    "posted_at",
    "edited_at",
    "body",
    "url",
    "root_id",
    "depth",
    "parent_missing",
    "body_length",
    "word_count",
    "link_count",
    "mention_count",
    "caps_ratio",
    "repeated_char_runs",
    "fingerprint",
    "language",
    "flags",
    "scores",
    "reasons",
    "toxicity",
    "author_comment_count",
    "author_flagged_count",
    "author_thread_count",
    "author_first_seen",
    "enriched_at",
    "version",
    "is_deleted",
    "unknown_fields",
    "source_state",
    "source_kind",
    "model_version",
)

DEAD_LETTER_COLUMNS = (
    "dead_letter_id",
    "stage",
    "reason_code",
    "reason",
    "source_topic",
    "source_partition",
    "source_offset",
    "raw",
    "received_at",
    "raw_length",
    "raw_sha256",
    "truncated",
    "origin",
)


def comment_row(c: EnrichedComment) -> list[Any]:
    e = c.event
    return [
        e.thread_id,
        e.comment_id,
        e.event_id,
        e.event_type,
        e.source,
        e.thread_title or "",
        c.parent_id,
        e.parent_author,
        e.author,
        e.posted_at,
        e.edited_at,
        e.body,
        e.url,
        c.root_id,
        c.depth,
        int(c.parent_missing),
        c.body_length,
        c.word_count,
        c.link_count,
        c.mention_count,
        c.caps_ratio,
        c.repeated_char_runs,
        c.fingerprint,
        c.language,
        list(c.flags.flags),
        dict(c.flags.scores),
        {k: list(v) for k, v in c.flags.reasons.items()},
        c.flags.scores.get("toxicity", 0.0),
        c.author_comment_count,
        c.author_flagged_count,
        c.author_thread_count,
        c.author_first_seen,
        c.enriched_at or datetime.now(UTC),
        stored_version(c),
        int(e.event_type == "comment.deleted"),
        e.unknown_fields or {},
        e.source_state or "",
        e.source_kind or "",
        c.model_version,
    ]


def stored_version(c: EnrichedComment) -> int:
    """The row's ReplacingMergeTree version: the revision, then the second stage above the inline
    verdict of the same revision (EnrichedComment.stage)."""
    return c.version * 2 + c.stage


def dead_letter_row(d: DeadLetter) -> list[Any]:
    return [
        d.dead_letter_id,
        d.stage,
        d.reason_code,
        d.reason,
        d.source_topic,
        d.source_partition,
        d.source_offset,
        d.raw,
        d.received_at,
        d.raw_length,
        d.raw_sha256,
        int(d.truncated),
        d.origin,
    ]
