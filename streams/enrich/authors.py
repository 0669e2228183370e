"""Per-author running stats over a key-value store (a Faust Table keyed by author in the worker).

Idempotent: a comment is counted once however often it is redelivered, and a later version of it
(edited, re-flagged) only moves the flagged count if its flag state changed.

Bounded: when the thread tree retires a comment (streams.enrich.thread, retention), enrich sends
the author a notice (:class:`RetiredComments`) and :func:`forget` drops the comment's member key.
The author's key for the thread keeps a horizon, the newest event time retired there: a comment
with no member key posted at or before it was counted before (a replay of a batch read before
the notice), so it is not counted again. A new comment cannot be posted at or before it: the
tree refuses those (its own horizon for the thread is at least as new) before they reach here.

The thread key itself goes too, once nothing can replay what it guards. A notice that says the
author has no comment left in the thread's state (`last`) seals the key: its value becomes
[horizon, partition, offset], the input position of the notice. The agent deletes a sealed key
(:func:`expire`) once that partition's committed offset is past the notice (:class:`SealedThreads`,
rebuilt from the store when partitions are assigned, so a restart or a rebalance leaves none
behind), because then (1) no replay of this agent's input can bring back a row read before the
notice, and (2) enrich sends notices only after its tree has persisted the retirement, so no
later row of the thread can be at or before the horizon. A notice read again keeps the first
one's position (the rows it guards all came before that one). A new comment of the author in the
thread before the expiry unseals the key. The price: an author who comes
back to a thread after the key went counts that thread again in `author_thread_count` (comments
are never counted twice). Without this the keys grew with every author-thread pair ever seen.

Store layout: s|author -> {"c": comments, "f": flagged, "t": threads, "fs": first_seen_ms},
m|author|comment -> 1 if flagged else 0, t|author|thread -> the horizon in ms (0 before any
retirement; 1 in stores written before retirements were sent; [horizon, partition, offset] once
sealed).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, MutableMapping
from dataclasses import dataclass, field
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
    the newest of their event times (last versions); `last`: the thread's state holds no other
    comment of the author (False in notices sent before it was known)."""

    author: str
    thread_id: str
    comment_ids: list[str]
    horizon_ms: int
    last: bool = False


#: A sealed thread key's value: [horizon ms, input partition, input offset of the sealing notice].
Sealed = list[int]


def _horizon(value: int | Sealed) -> int:
    """A thread key's horizon, sealed or not."""
    return value[0] if isinstance(value, list) else value


def observe(
    store: MutableMapping[str, Any], *, author: str, thread_id: str, comment_id: str, posted_ms: int, flagged: bool
) -> AuthorStats:
    current = store.get(f"s|{author}")
    stats = dict(current or {"c": 0, "f": 0, "t": 0, "fs": posted_ms})
    member_key = f"m|{author}|{comment_id}"
    previous = store.get(member_key)
    thread_key = f"t|{author}|{thread_id}"
    stored_horizon = store.get(thread_key)
    horizon = None if stored_horizon is None else _horizon(stored_horizon)
    if previous is None and horizon is not None and posted_ms <= horizon and current is not None:
        # Counted before and retired since: a replay of a batch read before the notice.
        return AuthorStats(stats["c"], stats["f"], stats["t"], stats["fs"])
    if previous is None:
        stats["c"] += 1
        stats["f"] += int(flagged)
        if horizon is not None and stored_horizon != horizon:
            store[thread_key] = horizon  # the author is back in the thread: unsealed
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


def forget(
    store: MutableMapping[str, Any],
    notices: Iterable[RetiredComments],
    sealed: list[tuple[str, Sealed]] | None = None,
    *,
    at: tuple[int, int] = (-1, -1),
) -> int:
    """Drop the member keys of retired comments and raise their threads' horizons; return how many
    member keys were dropped (a notice read twice drops nothing the second time). The notices were
    read `at` (input partition, offset); thread keys they seal are appended to `sealed` as (key,
    sealed value), for :func:`expire`."""
    dropped = 0
    for notice in notices:
        thread_key = f"t|{notice.author}|{notice.thread_id}"
        stored = store.get(thread_key)
        if stored is None:
            continue  # never counted here (its rows were dead-lettered), or expired: nothing to forget
        for comment_id in notice.comment_ids:
            member_key = f"m|{notice.author}|{comment_id}"
            if member_key in store:
                del store[member_key]
                dropped += 1
        horizon = max(_horizon(stored), notice.horizon_ms)
        value: int | Sealed = horizon
        if isinstance(stored, list):  # sealed already: this notice is one read again
            value = [horizon, *stored[1:]]
        elif notice.last:
            value = [horizon, *at]
        if value != stored:
            store[thread_key] = value
        if isinstance(value, list) and sealed is not None:
            sealed.append((thread_key, value))
    return dropped


def expire(store: MutableMapping[str, Any], sealed: Iterable[tuple[str, Sealed]]) -> int:
    """Delete the thread keys still sealed as they were (an author back in the thread unsealed
    theirs); return how many went. Only for keys whose notice no replay can precede (see above)."""
    expired = 0
    for key, value in sealed:
        if store.get(key) == value:
            del store[key]
            expired += 1
    return expired


@dataclass
class SealedThreads:
    """Sealed thread keys per input partition, by the offset of the notice that sealed them, until
    that partition's committed offset has passed it."""

    pending: dict[int, list[tuple[int, list[tuple[str, Sealed]]]]] = field(default_factory=dict)

    @classmethod
    def of_store(cls, store: Mapping[str, Any], partitions: set[int]) -> SealedThreads:
        """Every sealed thread key `store` holds for `partitions`, by its notice's position: what a
        restart or a rebalance hands over (its values say where their notices were read)."""
        found = cls()
        for key, value in store.items():
            if isinstance(value, list) and key.startswith("t|") and value[1] in partitions:
                found.add(value[1], value[2], [(key, value)])
        return found

    def add(self, partition: int, offset: int, sealed: list[tuple[str, Sealed]]) -> None:
        if sealed:
            self.pending.setdefault(partition, []).append((offset, sealed))

    def due(self, partition: int, committed: int | None) -> list[tuple[str, Sealed]]:
        """Take the keys sealed by notices before `committed` (the next offset a replay would read)."""
        waiting = self.pending.get(partition)
        if not waiting or committed is None:
            return []
        ready = [item for offset, keys in waiting if offset < committed for item in keys]
        if ready:
            self.pending[partition] = [(offset, keys) for offset, keys in waiting if offset >= committed]
        return ready
