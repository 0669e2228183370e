"""Dead letters on the wire: the original bytes as the Kafka value, what happened in the headers.

No base64 and no JSON envelope around the input, so a dead letter is barely larger than what it
keeps. Input too large to keep whole within a message (beyond MAX_DEAD_LETTER_RAW_BYTES) keeps its
first bytes, with its full length and sha256, so it can still be found and told apart. Pure: the
agents send and the sink reads these messages.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime

from streams.models import MAX_MESSAGE_BYTES, DeadLetter

#: Input up to this size is kept whole (leaves room for the headers within MAX_MESSAGE_BYTES).
MAX_DEAD_LETTER_RAW_BYTES = MAX_MESSAGE_BYTES - 48 * 1024
#: Larger input keeps this prefix.
TRUNCATED_PREFIX_BYTES = 64 * 1024
MAX_REASON_CHARS = 2000
#: The header a feeder puts on the messages it produces: "path:line" of the input.
ORIGIN_HEADER = "streams-origin"

_PREFIX = "dl-"


def dead_letter(
    reason_code: str,
    reason: str,
    *,
    stage: str,
    raw: bytes,
    topic: str,
    partition: int,
    offset: int,
    origin: str = "",
    received_at: datetime | None = None,
    item: str = "",
) -> DeadLetter:
    """A dead letter whose id is where its input came from: a replay of the topic, or a re-feed of
    the same file line (`origin`), lands once. `item` tells apart the letters of one message (one
    comment of an envelope)."""
    where = f"origin|{origin}" if origin else f"{topic}|{partition}|{offset}"
    if item:
        where = f"{where}|{item}"
    ident = hashlib.sha256(f"{where}|{stage}".encode()).hexdigest()[:24]
    truncated = len(raw) > MAX_DEAD_LETTER_RAW_BYTES
    return DeadLetter(
        dead_letter_id=ident,
        stage=stage,
        reason_code=reason_code,
        reason=reason[:MAX_REASON_CHARS],
        source_topic=topic,
        source_partition=partition,
        source_offset=offset,
        raw=raw[:TRUNCATED_PREFIX_BYTES] if truncated else raw,
        received_at=received_at or datetime.now(UTC),
        raw_length=len(raw),
        raw_sha256=hashlib.sha256(raw).hexdigest(),
        truncated=truncated,
        origin=origin,
    )


def to_message(letter: DeadLetter) -> tuple[bytes, list[tuple[str, bytes]]]:
    """(value, headers) for the dead-letter topic."""
    fields = {
        "dl-id": letter.dead_letter_id,
        "dl-stage": letter.stage,
        "dl-reason-code": letter.reason_code,
        "dl-reason": letter.reason,
        "dl-source-topic": letter.source_topic,
        "dl-source-partition": str(letter.source_partition),
        "dl-source-offset": str(letter.source_offset),
        "dl-received-at": letter.received_at.astimezone(UTC).isoformat(),
        "dl-raw-length": str(letter.raw_length),
        "dl-raw-sha256": letter.raw_sha256,
        "dl-truncated": "1" if letter.truncated else "0",
        "dl-origin": letter.origin,
    }
    return letter.raw, [(k, v.encode("utf-8", "replace")) for k, v in fields.items()]


class NotADeadLetter(ValueError):
    pass


def header_map(headers: Iterable[tuple[str, bytes]] | Mapping[str, bytes] | None) -> dict[str, str]:
    items = headers.items() if isinstance(headers, Mapping) else (headers or [])
    return {str(k): (v or b"").decode("utf-8", "replace") for k, v in items}


def from_message(value: bytes, headers: Iterable[tuple[str, bytes]] | Mapping[str, bytes] | None) -> DeadLetter:
    """The dead letter a message of the dead-letter topic carries (NotADeadLetter if it is none)."""
    h = header_map(headers)
    try:
        return DeadLetter(
            dead_letter_id=h["dl-id"],
            stage=h["dl-stage"],
            reason_code=h["dl-reason-code"],
            reason=h.get("dl-reason", ""),
            source_topic=h.get("dl-source-topic", ""),
            source_partition=int(h.get("dl-source-partition", "-1")),
            source_offset=int(h.get("dl-source-offset", "-1")),
            raw=value,
            received_at=datetime.fromisoformat(h["dl-received-at"]),
            raw_length=int(h.get("dl-raw-length", len(value))),
            raw_sha256=h.get("dl-raw-sha256", ""),
            truncated=h.get("dl-truncated") == "1",
            origin=h.get("dl-origin", ""),
        )
    except (KeyError, ValueError) as exc:
        raise NotADeadLetter(f"dead-letter headers missing or malformed: {exc}") from exc
