"""Per-author running stats over a key-value store (a Faust Table keyed by author in the worker).

Idempotent: a comment is counted once however often it is redelivered, and a later version of it
(edited, re-flagged) only moves the flagged count if its flag state changed.

Bounded: when the thread tree retires a comment (streams.enrich.thread, retention), enrich sends
the author a notice (:class:`RetiredComments`) and :func:`forget` drops the comment's member key.
The author's key for the thread keeps a horizon, the newest event time retired there: a comment
with no member key posted at or before it was counted before (a replay of a batch read before
the notice), so it is not counted again. A new comment cannot be posted at or before it: the
tree refuses those (its own horizon for the thread is at least as new) before they reach here.

Store layout: s|author -> {"c": comments, "f": flagged, "t": threads, "fs": first_seen_ms},
m|author|comment -> 1 if flagged else 0, t|author|thread -> the horizon in ms (0 before any
retirement; 1 in stores written before retirements were sent).
"""

from __future__ import annotations

from collections.abc import Iterable, MutableMapping
from dataclasses import dataclass
from typing import Any

import msgspec


@dataclass(frozen=True)
class AuthorStats:
    comment_count: int
    flagged_count: int
    thread_count: int
    first_seen_ms: int


class RetiredComments(msgspec.Struct, frozen=True):
    """Enrich retired these comments of `author` from thread `thread_id`'s state; `horizon_ms` is
    the newest of their event times (last versions)."""

    author: str
    thread_id: str
    comment_ids: list[str]
    horizon_ms: int


def observe(
    store: MutableMapping[str, Any], *, author: str, thread_id: str, comment_id: str, posted_ms: int, flagged: bool
) -> AuthorStats:
    current = store.get(f"s|{author}")
    stats = dict(current or {"c": 0, "f": 0, "t": 0, "fs": posted_ms})
    member_key = f"m|{author}|{comment_id}"
    previous = store.get(member_key)
    thread_key = f"t|{author}|{thread_id}"
    horizon = store.get(thread_key)
    if previous is None and horizon is not None and posted_ms <= horizon and current is not None:
        # Counted before and retired since: a replay of a batch read before the notice.
        return AuthorStats(stats["c"], stats["f"], stats["t"], stats["fs"])
    if previous is None:
        stats["c"] += 1
        stats["f"] += int(flagged)
    elif bool(previous) != flagged:
        stats["f"] += 1 if flagged else -1
    if previous is None or bool(previous) != flagged:
        store[member_key] = int(flagged)
    if horizon is None:
        store[thread_key] = 0
        stats["t"] += 1
    stats["fs"] = min(stats["fs"], posted_ms)
    if stats != current:
        store[f"s|{author}"] = stats
    return AuthorStats(stats["c"], stats["f"], stats["t"], stats["fs"])


def forget(store: MutableMapping[str, Any], notices: Iterable[RetiredComments]) -> int:
    """Drop the member keys of retired comments and raise their threads' horizons; return how many
    member keys were dropped (a notice read twice drops nothing the second time)."""
    dropped = 0
    for notice in notices:
        thread_key = f"t|{notice.author}|{notice.thread_id}"
        horizon = store.get(thread_key)
        if horizon is None:
            continue  # never counted here (its rows were dead-lettered): nothing to forget
        for comment_id in notice.comment_ids:
            member_key = f"m|{notice.author}|{comment_id}"
            if member_key in store:
                del store[member_key]
                dropped += 1
        if notice.horizon_ms > horizon:
            store[thread_key] = notice.horizon_ms
    return dropped
