"""Per-author running stats over a key-value store (a Faust Table keyed by author in the worker).

Idempotent: a comment is counted once however often it is redelivered, and a later version of it
(edited, re-flagged) only moves the flagged count if its flag state changed.

Store layout: s|author -> {"c": comments, "f": flagged, "t": threads, "fs": first_seen_ms},
m|author|comment -> 1 if flagged else 0, t|author|thread -> 1.
"""

from __future__ import annotations

from collections.abc import MutableMapping
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class AuthorStats:
    comment_count: int
    flagged_count: int
    thread_count: int
    first_seen_ms: int


def observe(
    store: MutableMapping[str, Any], *, author: str, thread_id: str, comment_id: str, posted_ms: int, flagged: bool
) -> AuthorStats:
    stats = dict(store.get(f"s|{author}") or {"c": 0, "f": 0, "t": 0, "fs": posted_ms})
    member_key = f"m|{author}|{comment_id}"
    previous = store.get(member_key)
    if previous is None:
        stats["c"] += 1
        stats["f"] += int(flagged)
    elif bool(previous) != flagged:
        stats["f"] += 1 if flagged else -1
    if previous is None or bool(previous) != flagged:
        store[member_key] = int(flagged)
    thread_key = f"t|{author}|{thread_id}"
    if store.get(thread_key) is None:
        store[thread_key] = 1
        stats["t"] += 1
    stats["fs"] = min(stats["fs"], posted_ms)
    if stats != store.get(f"s|{author}"):
        store[f"s|{author}"] = stats
    return AuthorStats(stats["c"], stats["f"], stats["t"], stats["fs"])
