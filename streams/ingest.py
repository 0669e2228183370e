"""Validation and normalisation of raw comment events: bytes in, an event or a rejection out.

Pure: no Kafka here. The ingest agent sends accepted events on and rejections to the dead-letter
topic, with the original bytes.
"""

from __future__ import annotations

import hashlib
import unicodedata
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import msgspec

from streams.models import CommentEvent, DeadLetter

#: Clocks disagree; beyond this an event "from the future" is a producer bug, not skew.
MAX_CLOCK_SKEW = timedelta(days=1)

_DECODER = msgspec.json.Decoder(CommentEvent)


@dataclass(frozen=True)
class Rejection:
    reason_code: str
    reason: str


def validate(raw: bytes, *, now: datetime | None = None) -> CommentEvent | Rejection:
    """Decode and check one message; never raises."""
    if not raw or not raw.strip():
        return Rejection("empty", "empty message")
    try:
        event = _DECODER.decode(raw)
    except msgspec.ValidationError as exc:
        return Rejection("schema", f"does not match comment.v1: {exc}")
    except msgspec.DecodeError as exc:
        return Rejection("not_json", f"not valid JSON: {exc}")
    if not event.author.strip():
        return Rejection("schema", "author is blank")
    now = now or datetime.now(UTC)
    if event.posted_at - now > MAX_CLOCK_SKEW:
        return Rejection("future_timestamp", f"posted_at {event.posted_at.isoformat()} is in the future")
    if event.edited_at is not None and event.edited_at < event.posted_at:
        return Rejection("edited_before_posted", "edited_at is earlier than posted_at")
    if event.parent_id is not None and event.parent_id == event.comment_id:
        return Rejection("self_parent", "a comment cannot be its own parent")
    return normalise(event)


def normalise(event: CommentEvent) -> CommentEvent:
    """Canonical form: UTC times, NFC text, trimmed names; empty optional strings become None."""
    return msgspec.structs.replace(
        event,
        author=unicodedata.normalize("NFC", event.author.strip()),
        parent_author=(unicodedata.normalize("NFC", event.parent_author.strip()) or None)
        if event.parent_author
        else None,
        parent_id=event.parent_id or None,
        thread_title=event.thread_title.strip() if event.thread_title else None,
        body=unicodedata.normalize("NFC", event.body),
        posted_at=event.posted_at.astimezone(UTC),
        edited_at=event.edited_at.astimezone(UTC) if event.edited_at else None,
    )


def dead_letter(
    rejection: Rejection,
    *,
    stage: str,
    raw: bytes,
    topic: str,
    partition: int,
    offset: int,
    received_at: datetime | None = None,
) -> DeadLetter:
    """A dead letter whose id is its source position, so a replay of the same input lands once."""
    ident = hashlib.sha256(f"{topic}|{partition}|{offset}|{stage}".encode()).hexdigest()[:24]
    return DeadLetter(
        dead_letter_id=ident,
        stage=stage,
        reason_code=rejection.reason_code,
        reason=rejection.reason[:2000],
        source_topic=topic,
        source_partition=partition,
        source_offset=offset,
        raw=raw,
        received_at=received_at or datetime.now(UTC),
    )
