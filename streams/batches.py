"""Batch envelopes: how rows travel on the internal topics (one Kafka message per batch, not per row).

Faust spends ~150 µs of framework time on every message it delivers and aiokafka adds a produce cost
per message, far more than the work done per comment; so after ingest every hop carries one message
per destination partition per batch: ``{"v": 1, "items": [...]}``, decoded in one msgspec call.

Pure: no Kafka here. The agents choose the destination partition (:func:`partition_of`) and send
the encoded envelopes; a row larger than an envelope's target size travels alone.
"""

from __future__ import annotations

import functools
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from typing import Any, Generic, TypeVar

import msgspec
from aiokafka.partitioner import murmur2

#: Bumped when the envelope changes shape; a consumer dead-letters versions it does not know.
ENVELOPE_VERSION = 1
#: Envelopes are cut at about this many bytes of rows (under the topics' 1 MiB message limit, with
#: room for Kafka's record overhead); a single row above it is sent alone.
ENVELOPE_TARGET_BYTES = 512 * 1024
#: ... and at this many rows, so one batch's envelopes spread over a consumer's take() sizes.
ENVELOPE_MAX_ROWS = 1000
#: What an envelope holds in a steady stream (a 2,000-message ingest batch over 4 partitions), for
#: settings that count rows but meet envelopes (the sinks' batch size).
ENVELOPE_TYPICAL_ROWS = 500
#: The partition count the agents' envelope counts per batch are written for (see envelopes_per_batch).
BASE_PARTITIONS = 4

T = TypeVar("T")


def envelopes_per_batch(at_base: int, partitions: int) -> int:
    """How many envelopes an agent takes per batch, given how many it takes with BASE_PARTITIONS.

    An upstream batch writes one envelope per partition, so envelopes hold fewer rows as partitions
    grow; a fixed envelope count would shrink every batch with them, and each batch's fixed costs
    (sends, acknowledgements, table persists, window advances) would weigh more per comment
    (100k events on one process: 4 partitions 1,065 events/s, 8 partitions 655/s)."""
    return at_base * max(1, -(-partitions // BASE_PARTITIONS))


#: How many envelopes an agent's stream may hold read but unprocessed, with BASE_PARTITIONS: three
#: of the largest batch an agent takes (the windows', 20). Faust's own limit (stream_buffer_maxsize,
#: 4,096 messages) is sized for single comments; with envelopes of up to ENVELOPE_TARGET_BYTES
#: each, agents that fell behind the ones upstream held hundreds of MB of them (a 1M-event replay
#: grew ~1.5 KB of RSS per comment while the windows and authors agents lagged).
ENVELOPE_BUFFER_AT_BASE = 64


def envelope_buffer(partitions: int) -> int:
    """The stream buffer (messages) of a topic that carries envelopes."""
    return envelopes_per_batch(ENVELOPE_BUFFER_AT_BASE, partitions)


_PREFIX = b'{"v":%d,"items":[' % ENVELOPE_VERSION
_SUFFIX = b"]}"
_ENCODER = msgspec.json.Encoder()


class Envelope(msgspec.Struct, Generic[T]):
    v: int
    items: list[T]
    #: comments.valid only: where each item was read on comments.raw ([partition, offset], one per
    #: item), so enrich tells ingest's copies re-sent after a crash from a source sending again.
    #: Older envelopes, and other topics, have none.
    raw: list[tuple[int, int]] = []


class UnknownEnvelope(ValueError):
    """An envelope of a version this code does not read."""


class EnvelopeDecoder(Generic[T]):
    """Decodes an envelope of `item_type` rows in one msgspec call."""

    def __init__(self, item_type: type[T]) -> None:
        self._decoder = msgspec.json.Decoder(Envelope[item_type])  # type: ignore[valid-type]

    def decode(self, value: bytes) -> list[T]:
        return self.decode_envelope(value).items

    def decode_envelope(self, value: bytes) -> Envelope[T]:
        """The whole envelope: its items and, on comments.valid, their positions on comments.raw."""
        envelope: Envelope[T] = self._decoder.decode(value)
        if envelope.v != ENVELOPE_VERSION:
            raise UnknownEnvelope(f"envelope version {envelope.v}; this worker reads {ENVELOPE_VERSION}")
        if envelope.raw and len(envelope.raw) != len(envelope.items):
            raise msgspec.ValidationError(f"{len(envelope.raw)} raw positions for {len(envelope.items)} items")
        return envelope


@functools.lru_cache(maxsize=65536)
def partition_of(key: str, partitions: int) -> int:
    """The partition Kafka's default partitioner gives messages keyed `key` (murmur2, as the Java
    client and aiokafka): stable across processes and restarts, and the one a feeder keying
    comments.raw by thread id chose, so raw partition p feeds comments.valid partition p. That
    matters for the windows: a valid partition fed by several raw partitions read at different
    speeds would report event-time progress far ahead of what it has still to send."""
    hashed: int = murmur2(key.encode("utf-8", "surrogatepass"))
    return (hashed & 0x7FFFFFFF) % partitions


def encode_envelopes(
    rows: Iterable[Any],
    *,
    target_bytes: int = ENVELOPE_TARGET_BYTES,
    max_rows: int = ENVELOPE_MAX_ROWS,
    raw: Sequence[tuple[int, int]] | None = None,
) -> list[bytes]:
    """The rows, in order, as envelopes of at most `max_rows` rows and about `target_bytes` each;
    with `raw` (one comments.raw position per row), each envelope carries its rows' positions."""
    out: list[bytes] = []
    parts: list[bytes] = []
    size = 0
    first = 0  # the index of the envelope's first row, for its raw positions

    def close(end: int) -> None:
        body = _PREFIX + b",".join(parts)
        if raw is None:
            out.append(body + _SUFFIX)
        else:
            out.append(body + b'],"raw":' + _ENCODER.encode(raw[first:end]) + b"}")

    index = 0
    for index, row in enumerate(rows):
        encoded = _ENCODER.encode(row)
        if parts and (size + len(encoded) > target_bytes or len(parts) >= max_rows):
            close(index)
            parts, size, first = [], 0, index
        parts.append(encoded)
        size += len(encoded) + 1
    if parts:
        close(index + 1)
    rows_seen = index + 1 if parts else 0
    if raw is not None and len(raw) != rows_seen:
        raise ValueError(f"{len(raw)} raw positions for {rows_seen} rows")
    return out


def group_by_partition(rows: Sequence[T], partition: Callable[[T], int]) -> dict[int, list[T]]:
    """Rows per destination partition, each list in the rows' order."""
    grouped: dict[int, list[T]] = defaultdict(list)
    for row in rows:
        grouped[partition(row)].append(row)
    return dict(grouped)
