"""Validation and normalisation of raw comment events: bytes in, an event or a rejection out.

Pure: no Kafka here. The ingest agent sends accepted events on and rejections to the dead-letter
topic, with the original bytes.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import msgspec

from streams.models import (
    EARLIEST_TIME,
    MAX_BODY_BYTES,
    MAX_ID_BYTES,
    MAX_NAME_BYTES,
    MAX_RAW_EVENT_BYTES,
    MAX_TITLE_BYTES,
    MAX_URL_BYTES,
    CommentEvent,
)

#: Clocks disagree; beyond this an event "from the future" is a producer bug, not skew.
MAX_CLOCK_SKEW = timedelta(days=1)
#: An unknown field's JSON is kept up to this many bytes.
MAX_UNKNOWN_FIELD_BYTES = 1024
#: At most this many unknown fields are kept (the count of all of them is in the reason's metric).
MAX_UNKNOWN_FIELDS = 32


class _StrictEvent(CommentEvent, forbid_unknown_fields=True, frozen=True, kw_only=True):
    """CommentEvent that fails on a key it does not define: the fast path sees every unknown key."""


_STRICT = msgspec.json.Decoder(_StrictEvent)
_FIELDS = msgspec.json.Decoder(dict[str, msgspec.Raw])
_DECODER = msgspec.json.Decoder(CommentEvent)
_KNOWN = frozenset(CommentEvent.__struct_fields__) - {"unknown_fields"}
_BYTE_LIMITS = (
    ("event_id", MAX_ID_BYTES),
    ("source", MAX_ID_BYTES),
    ("thread_id", MAX_ID_BYTES),
    ("comment_id", MAX_ID_BYTES),
    ("parent_id", MAX_ID_BYTES),
    ("author", MAX_NAME_BYTES),
    ("parent_author", MAX_NAME_BYTES),
    ("thread_title", MAX_TITLE_BYTES),
    ("url", MAX_URL_BYTES),
    ("body", MAX_BODY_BYTES),
)


@dataclass(frozen=True)
class Rejection:
    reason_code: str
    reason: str


def validate(raw: bytes, *, now: datetime | None = None) -> CommentEvent | Rejection:
    """Decode and check one message: any bytes at all give an event or a rejection; never raises."""
    try:
        return _validate(raw, now=now)
    except Exception as exc:  # a bug here must cost one dead letter, not the worker
        return Rejection("internal", f"validation failed unexpectedly: {type(exc).__name__}: {exc}")


def _validate(raw: bytes, *, now: datetime | None) -> CommentEvent | Rejection:
    if len(raw) > MAX_RAW_EVENT_BYTES:
        return Rejection("too_large", f"{len(raw)} bytes; an event is at most {MAX_RAW_EVENT_BYTES}")
    if not raw or not raw.strip():
        return Rejection("empty", "empty message")
    decoded = _decode(raw)
    if isinstance(decoded, Rejection):
        return decoded
    event = decoded
    for name, limit in _BYTE_LIMITS:
        value = getattr(event, name)
        if value is not None and len(value) * 4 > limit and len(value.encode("utf-8", "surrogatepass")) > limit:
            return Rejection("too_large", f"{name} is over {limit} bytes of UTF-8")
    if not event.author.strip():
        return Rejection("schema", "author is blank")
    now = now or datetime.now(UTC)
    for name in ("posted_at", "edited_at"):
        when = getattr(event, name)
        if when is None:
            continue
        if when < EARLIEST_TIME:
            return Rejection("out_of_range", f"{name} {when.isoformat()} is before {EARLIEST_TIME.year}")
        if when - now > MAX_CLOCK_SKEW:
            return Rejection("future_timestamp", f"{name} {when.isoformat()} is in the future")
    if event.edited_at is not None and event.edited_at < event.posted_at:
        return Rejection("edited_before_posted", "edited_at is earlier than posted_at")
    if event.parent_id is not None and event.parent_id == event.comment_id:
        return Rejection("self_parent", "a comment cannot be its own parent")
    return normalise(event)


def _decode(raw: bytes) -> CommentEvent | Rejection:
    """The event in `raw`, keeping unknown keys (the strict decoder fails fast on the rare event with one)."""
    try:
        try:
            return _STRICT.decode(raw)
        except msgspec.ValidationError as exc:
            if not str(exc).startswith("Object contains unknown field"):
                raise
        fields = _FIELDS.decode(raw)
        unknown = {k: v for k, v in fields.items() if k not in _KNOWN}
        known = msgspec.json.encode({k: v for k, v in fields.items() if k in _KNOWN})
        event = _DECODER.decode(known)
        kept = {
            k[:MAX_UNKNOWN_FIELD_BYTES]: bytes(v)[:MAX_UNKNOWN_FIELD_BYTES].decode("utf-8", "replace")
            for k, v in list(unknown.items())[:MAX_UNKNOWN_FIELDS]
        }
        return msgspec.structs.replace(event, unknown_fields=kept)
    except msgspec.ValidationError as exc:
        return Rejection("schema", f"does not match comment.v1: {exc}")
    except msgspec.DecodeError as exc:
        return Rejection("not_json", f"not valid JSON: {exc}")
    except UnicodeDecodeError as exc:
        return Rejection("not_utf8", f"invalid UTF-8 at byte {exc.start}: {exc.reason}")
    except RecursionError:
        return Rejection("too_deep", "JSON is nested too deeply")


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
