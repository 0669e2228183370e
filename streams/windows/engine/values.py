"""The values of one window (counts, mean toxicity, velocity, acceleration) from its buckets.

Pure functions of the set of comments in the window and the one before it, so they do not depend
on arrival order; the engine compares them before and after a change to decide on a correction.
"""

from __future__ import annotations

import math
from typing import Any

from streams.windows.engine.kinds import _H, MINUTE_MS
from streams.windows.engine.store import Bucket


def window_values(n: int, start: int, pairs: list[tuple[int, Bucket]]) -> list[Any] | None:
    """[comments, distinct_authors, flagged_comments, flagged, mean_toxicity, max_depth,
    velocity, acceleration] of the window of ``n`` minutes at ``start``, or None when empty.

    ``pairs``: the non-empty (minute, bucket)s in [start - 1 min, start + n - 1 min], ascending;
    the minute before the window only feeds the previous window's count (acceleration).
    """
    window_buckets = [bucket for minute, bucket in pairs if minute >= start]
    if not window_buckets:
        return None
    merged: Bucket
    if len(window_buckets) == 1:
        merged = window_buckets[0]  # read-only below: no copy needed
    else:
        merged = {}
        for bucket in window_buckets:
            merged.update(bucket)
    authors: set[str] = set()
    flagged: dict[str, int] = {}
    flagged_comments = 0
    max_depth = 0
    toxicities: list[float] = []
    for author, flags, toxicity, depth, _t, _thread in merged.values():
        authors.add(author)
        if flags:
            flagged_comments += 1
            for category in flags:
                flagged[category] = flagged.get(category, 0) + 1
        toxicities.append(toxicity)
        if depth > max_depth:
            max_depth = depth
    # previous window: minutes [start - 1 min, start + n - 2 min]
    previous_buckets = [bucket for minute, bucket in pairs if minute < start + (n - 1) * _H]
    if len(previous_buckets) <= 1:
        previous = len(previous_buckets[0]) if previous_buckets else 0
    else:
        previous_ids: set[str] = set()
        for bucket in previous_buckets:
            previous_ids.update(bucket)
        previous = len(previous_ids)
    comments = len(merged)
    window_minutes = n * _H / MINUTE_MS
    velocity = comments / window_minutes
    return [
        comments,
        len(authors),
        flagged_comments,
        dict(sorted(flagged.items())) if len(flagged) > 1 else flagged,
        math.fsum(toxicities) / comments,  # fsum: independent of member order
        max_depth,
        velocity,
        velocity - previous / window_minutes,
    ]


def empty_window_values(n: int, start: int, pairs: list[tuple[int, Bucket]]) -> list[Any]:
    """The values of a window whose comments were all removed (acceleration still counts the previous one)."""
    previous_ids: set[str] = set()
    for minute, bucket in pairs:
        if minute < start + (n - 1) * _H:
            previous_ids.update(bucket)
    window_minutes = n * _H / MINUTE_MS
    return [0, 0, 0, {}, 0.0, 0, 0.0, -len(previous_ids) / window_minutes]
