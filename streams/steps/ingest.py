"""The ingest step: raw message values -> comment events for comments.valid, or rejections."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from streams.batches import group_by_partition, partition_of
from streams.ingest import Rejection, validate
from streams.models import CommentEvent


@dataclass
class IngestOutput:
    #: Accepted events per comments.valid partition, each list in input order.
    valid: dict[int, list[CommentEvent]] = field(default_factory=dict)
    #: The position in the batch of each event of `valid`, list for list.
    positions: dict[int, list[int]] = field(default_factory=dict)
    #: (position in the batch, why) of every value that is not an event.
    rejected: list[tuple[int, Rejection]] = field(default_factory=list)
    accepted: int = 0
    unknown_fields: int = 0


def validate_batch(values: Sequence[bytes], *, partitions: int) -> IngestOutput:
    """Validate each value; a thread's events go to one comments.valid partition, in input order."""
    out = IngestOutput()
    accepted: list[tuple[CommentEvent, int]] = []
    for position, value in enumerate(values):
        result = validate(value)
        if isinstance(result, Rejection):
            out.rejected.append((position, result))
            continue
        out.unknown_fields += len(result.unknown_fields or ())
        accepted.append((result, position))
    grouped = group_by_partition(accepted, lambda pair: partition_of(pair[0].thread_id, partitions))
    out.valid = {partition: [e for e, _ in pairs] for partition, pairs in grouped.items()}
    out.positions = {partition: [p for _, p in pairs] for partition, pairs in grouped.items()}
    out.accepted = len(accepted)
    return out
