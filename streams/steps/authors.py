"""The authors step: enriched rows -> the same rows with their author's counts (exact per author,
because comments.authored puts every comment of an author in one partition); retirement notices
from enrich -> the counts' per-comment state let go (streams.enrich.authors)."""

from __future__ import annotations

from collections.abc import Iterable, MutableMapping, Sequence
from typing import Any

from streams.enrich import authors as author_state
from streams.enrich.authors import RetiredComments, Sealed
from streams.enrich.compose import with_author_stats
from streams.models import EnrichedComment


def count(store: MutableMapping[str, Any], comments: Sequence[EnrichedComment]) -> list[EnrichedComment]:
    """Count each comment for its author (a redelivered comment counts once) and stamp the stats on it."""
    out = []
    for comment in comments:
        e = comment.event
        stats = author_state.observe(
            store,
            author=e.author,
            thread_id=e.thread_id,
            comment_id=e.comment_id,
            posted_ms=int(e.posted_at.timestamp() * 1000),
            flagged=bool(comment.flags.flags),
        )
        out.append(with_author_stats(comment, stats))
    return out


def forget(
    store: MutableMapping[str, Any],
    notices: Iterable[RetiredComments],
    sealed: list[tuple[str, Sealed]] | None = None,
    *,
    at: tuple[int, int] = (-1, -1),
) -> int:
    """Let go of retired comments' state (read after the rows enrich sent before them, at input
    position `at`); return how many comments' keys were dropped. Thread keys sealed go to `sealed`
    (streams.enrich.authors)."""
    return author_state.forget(store, notices, sealed, at=at)


def expire(store: MutableMapping[str, Any], sealed: Iterable[tuple[str, Sealed]]) -> int:
    """Delete sealed thread keys no replay can need any more; return how many went."""
    return author_state.expire(store, sealed)
