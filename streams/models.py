"""Event and row types: the one source of truth for what travels on the topics.

`schemas/events/*.json` is generated from these types (`streams schema --write`); a test fails when
the files are stale. Structs are msgspec types so that decoding doubles as validation.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

import msgspec

SCHEMA_VERSION = 1

EventType = Literal["comment.created", "comment.edited", "comment.deleted"]
NonEmpty = Annotated[str, msgspec.Meta(min_length=1, max_length=512)]
AwareDateTime = Annotated[datetime, msgspec.Meta(tz=True, description="ISO 8601 with a UTC offset")]


class CommentEvent(msgspec.Struct, kw_only=True, frozen=True):
    """A comment was created, edited or deleted somewhere (v1).

    Ids are stable: producing the same source twice gives the same `event_id` and `comment_id`,
    which is what makes a replay land once in ClickHouse.
    """

    schema_version: Literal[1] = 1
    event_id: NonEmpty
    event_type: EventType = "comment.created"
    source: NonEmpty
    thread_id: NonEmpty
    thread_title: str | None = None
    comment_id: NonEmpty
    parent_id: str | None = None
    parent_author: str | None = None
    author: NonEmpty
    posted_at: AwareDateTime
    edited_at: AwareDateTime | None = None
    body: Annotated[str, msgspec.Meta(max_length=1_000_000)] = ""
    url: str | None = None


class FlagResult(msgspec.Struct, kw_only=True, frozen=True):
    """Moderation outcome for one text: a score per category, the categories over threshold, and why."""

    scores: dict[str, float]
    flags: list[str]
    reasons: dict[str, list[str]]


class EnrichedComment(msgspec.Struct, kw_only=True, frozen=True):
    """A validated comment plus thread position, text features, language, author stats and flags."""

    event: CommentEvent
    root_id: str
    depth: int
    #: The resolved parent, or None for a top-level comment / a parent not (yet) seen.
    parent_id: str | None
    #: A reply whose parent has not arrived: depth is provisional until it does.
    parent_missing: bool = False
    body_length: int = 0
    word_count: int = 0
    link_count: int = 0
    mention_count: int = 0
    caps_ratio: float = 0.0
    repeated_char_runs: int = 0
    fingerprint: str = ""
    language: str = "und"
    flags: FlagResult = msgspec.field(default_factory=lambda: FlagResult(scores={}, flags=[], reasons={}))
    author_comment_count: int = 1
    author_flagged_count: int = 0
    author_thread_count: int = 1
    author_first_seen: datetime | None = None
    #: Higher wins in ClickHouse (ReplacingMergeTree): later edits and parent fixes replace earlier rows.
    version: int = 0
    enriched_at: datetime | None = None


class DeadLetter(msgspec.Struct, kw_only=True, frozen=True):
    """Input a stage could not accept, kept with the reason and the original bytes."""

    dead_letter_id: str
    stage: str
    reason_code: str
    reason: str
    source_topic: str
    source_partition: int
    source_offset: int
    raw: bytes
    received_at: datetime


def comment_event_schema() -> dict[str, object]:
    """JSON Schema (2020-12) of CommentEvent v1, as written to schemas/events/comment.v1.json."""
    schema: dict[str, object] = dict(msgspec.json.schema(CommentEvent))
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["$id"] = "https://comment-streams.dev/schemas/events/comment.v1.json"
    schema["title"] = "comment.v1"
    return schema
