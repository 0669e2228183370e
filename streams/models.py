"""Event and row types: the one source of truth for what travels on the topics.

`schemas/events/*.json` is generated from these types (`streams schema --write`); a test fails when
the files are stale. Structs are msgspec types so that decoding doubles as validation.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Literal

import msgspec

SCHEMA_VERSION = 2
#: Versions the decoder accepts: v2 adds optional fields only, so every v1 event is a valid v2 event.
SCHEMA_VERSIONS = (1, 2)

# Size limits, in bytes of UTF-8 (Kafka counts bytes, not characters). They agree with the topics
# the app creates (streams/kafka_admin.py): a message on comments.raw is at most MAX_MESSAGE_BYTES,
# and a comment within these limits, once enriched, fits in one message of any internal topic.
#: The broker's and our topics' max.message.bytes (Kafka's default), and the producers' request size.
MAX_MESSAGE_BYTES = 1_048_588
#: The largest raw event ingest reads (the rest of a message is Kafka's record overhead).
MAX_RAW_EVENT_BYTES = 1_000_000
MAX_ID_BYTES = 512
MAX_NAME_BYTES = 512
MAX_TITLE_BYTES = 4096
MAX_URL_BYTES = 8192
MAX_BODY_BYTES = 256 * 1024
#: Dates ClickHouse's DateTime64 stores (1900-01-01 .. 2299-12-31); we accept from 1900 on.
EARLIEST_TIME = datetime(1900, 1, 1, tzinfo=UTC)

EventType = Literal["comment.created", "comment.edited", "comment.deleted"]
# max_length counts characters, each at least one byte: a first bound; ingest checks the bytes.
NonEmpty = Annotated[str, msgspec.Meta(min_length=1, max_length=MAX_ID_BYTES)]
#: The comment's moderation state at its source (v2), as the source said it; None: the source says nothing.
SourceState = Literal["visible", "pending", "spam", "deleted", "removed", "hidden"]
AwareDateTime = Annotated[datetime, msgspec.Meta(tz=True, description="ISO 8601 with a UTC offset")]


class CommentEvent(msgspec.Struct, kw_only=True, frozen=True):
    """A comment was created, edited or deleted somewhere (v2; a v1 event is a valid v2 event).

    Ids are stable: producing the same source twice gives the same `event_id` and `comment_id`,
    which is what makes a replay land once in ClickHouse.
    """

    schema_version: Literal[1, 2] = 1
    event_id: NonEmpty
    event_type: EventType = "comment.created"
    source: NonEmpty
    thread_id: NonEmpty
    thread_title: Annotated[str, msgspec.Meta(max_length=MAX_TITLE_BYTES)] | None = None
    comment_id: NonEmpty
    parent_id: Annotated[str, msgspec.Meta(max_length=MAX_ID_BYTES)] | None = None
    parent_author: Annotated[str, msgspec.Meta(max_length=MAX_NAME_BYTES)] | None = None
    author: Annotated[str, msgspec.Meta(min_length=1, max_length=MAX_NAME_BYTES)]
    posted_at: AwareDateTime
    edited_at: AwareDateTime | None = None
    body: Annotated[str, msgspec.Meta(max_length=MAX_BODY_BYTES)] = ""
    url: Annotated[str, msgspec.Meta(max_length=MAX_URL_BYTES)] | None = None
    #: Set by ingest, never by producers: keys the event had that this schema does not define, with
    #: their JSON (each cut to 1 KiB), so a misspelt key ("parnet_id") is kept and visible, not lost.
    unknown_fields: dict[str, str] | None = None
    #: v2: moderation state at the source (spam, deleted, pending, ...), to compare with our flags.
    source_state: SourceState | None = None
    #: v2: what the record was at the source when not a plain comment ("submission", "story",
    #: "pingback", "trackback", "moderator_action", ...).
    source_kind: Annotated[str, msgspec.Meta(max_length=64)] | None = None


#: Fields that v2 added; the v1 schema is the v2 schema without them.
V2_FIELDS = ("source_state", "source_kind")


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
    #: What scored `flags` (streams.enrich.flags ModerationConfig.model_version); '' when unknown.
    model_version: str = ""
    author_comment_count: int = 1
    author_flagged_count: int = 0
    author_thread_count: int = 1
    author_first_seen: datetime | None = None
    #: Higher wins in ClickHouse (ReplacingMergeTree): later edits and parent fixes replace earlier rows.
    version: int = 0
    enriched_at: datetime | None = None
    #: Which scorer's verdict `flags` is: 0 the inline scorer, 1 the second stage
    #: (streams/enrich/flags/second_stage.py). The stored row version is ``version * 2 + stage``, so
    #: the second stage's row replaces the inline one of the same revision and the next revision's
    #: inline row replaces both.
    stage: int = 0


class DeadLetter(msgspec.Struct, kw_only=True, frozen=True):
    """Input a stage could not accept, kept with the reason and the original bytes.

    `raw` is the input as it was, or its first bytes when it was too large to keep whole
    (`truncated`); `raw_length` and `raw_sha256` always describe the whole input.
    """

    dead_letter_id: str
    stage: str
    reason_code: str
    reason: str
    source_topic: str
    source_partition: int
    source_offset: int
    raw: bytes
    received_at: datetime
    raw_length: int = 0
    raw_sha256: str = ""
    truncated: bool = False
    #: Where a feeder read it ("path:line"), when it says so: a re-fed file's dead letters land once.
    origin: str = ""


def comment_event_schema(version: int = 1) -> dict[str, object]:
    """JSON Schema (2020-12) of CommentEvent v1 or v2, as written to schemas/events/comment.vN.json.

    v1 is derived from the one struct: v2 minus the fields v2 added, with `schema_version` 1 only.
    """
    if version not in SCHEMA_VERSIONS:
        raise ValueError(f"no comment event schema version {version}")
    schema: dict[str, object] = dict(msgspec.json.schema(CommentEvent))
    definitions = schema.get("$defs")
    if isinstance(definitions, dict):
        struct = dict(definitions["CommentEvent"])
        properties = dict(struct["properties"])
        if version == 1:
            for name in V2_FIELDS:
                properties.pop(name, None)
            properties["schema_version"] = {"default": 1, "enum": [1]}
        struct["properties"] = properties
        struct["title"] = "CommentEvent"
        if version == 1 and isinstance(struct.get("description"), str):
            struct["description"] = struct["description"].replace("(v2; a v1 event is a valid v2 event)", "(v1)")
        schema["$defs"] = {**definitions, "CommentEvent": struct}
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["$id"] = f"https://comment-streams.dev/schemas/events/comment.v{version}.json"
    schema["title"] = f"comment.v{version}"
    return schema
