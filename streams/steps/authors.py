"""The authors step: enriched rows -> the same rows with their author's counts (exact per author,
because comments.authored puts every comment of an author in one partition); retirement notices
from enrich -> the counts' per-comment state let go (streams.enrich.authors)."""

from __future__ import annotations

from collections.abc import MutableMapping, Sequence
from typing import Any

from streams.enrich import authors as author_state
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


#: Retirement notices (read after the rows enrich sent before them) -> the counts' per-comment keys
#: dropped and the thread keys they seal; sealed keys no replay can need any more -> deleted.
forget = author_state.forget
expire = author_state.expire
