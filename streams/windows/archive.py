"""Deterministic synthetic comment archive for window/detector tests and benchmarks.

``generate_archive`` simulates a stretch of comment traffic: popular and quiet threads and authors
(Zipf-like), replies to earlier comments of the same thread (so ``parent_author`` and ``depth`` are
consistent), a few percent flagged comments with high toxicity, unique fingerprints plus some
copy-pasta, and -- unless ``incidents=False`` -- injected incidents (author floods, pile-ons, spam
waves, toxicity bursts) so every detector has something to find.

The result is in ARRIVAL order: items are shuffled, but an item never arrives after another whose
event time is ``shuffle_within`` or more later than its own (arrival key = event time + a uniform
delay in ``[0, shuffle_within)``). With ``shuffle_within <= allowed lateness`` the window engine
therefore never sees a late item. Same arguments -> same list, on any machine.
"""

from __future__ import annotations

import random
from datetime import datetime, timedelta
from itertools import accumulate
from typing import Final

from streams.windows.detectors import dt_to_ms
from streams.windows.engine import WindowInput

__all__ = ["CATEGORIES", "generate_archive"]

CATEGORIES: Final = ("toxicity", "insult", "spam", "threat", "profanity")
_CATEGORY_WEIGHTS: Final = tuple(accumulate((40, 25, 20, 5, 10)))
_REPLY_SHARE: Final = 0.65
_RECENT_PER_THREAD: Final = 32
_COPYPASTA: Final = 20

# A record before ids are assigned:
# (t, thread index, author, parent_author | None, forced flags | None, forced fingerprint | None)
_Record = tuple[int, int, str, str | None, list[str] | None, str | None]


def _zipf_cum_weights(n: int, s: float) -> list[float]:
    return list(accumulate(1.0 / (rank**s) for rank in range(1, n + 1)))


def _author(index: int) -> str:
    return f"u{index:06d}"


def _incidents(
    rng: random.Random, n_budget: int, start_ms: int, duration_ms: int, threads: int, authors: int
) -> list[_Record]:
    """Injected episodes, one of each kind per ~5,000 comments (none for tiny archives)."""
    records: list[_Record] = []
    rounds = n_budget // 5000 if n_budget >= 5000 else (1 if n_budget >= 200 else 0)
    span = max(duration_ms - 10 * 60_000, 1)
    for k in range(rounds):
        # author flood: 14 comments in 50 s
        t0 = start_ms + rng.randrange(span)
        flooder = _author(rng.randrange(authors))
        thread = rng.randrange(threads)
        records.extend((t0 + i * 3_500, thread, flooder, None, None, None) for i in range(14))
        # pile-on: 5 other authors reply to one author within 4 min, 3 of them flagged
        t0 = start_ms + rng.randrange(span)
        target_index = rng.randrange(authors)
        thread = rng.randrange(threads)
        others = [i for i in rng.sample(range(authors), min(6, authors)) if i != target_index][:5]
        for j, who in enumerate(others):
            flags = ["insult"] if j % 2 == 0 else []
            records.append((t0 + j * 45_000, thread, _author(who), _author(target_index), flags, None))
        # spam wave: the same text from 4 authors within 3 min
        t0 = start_ms + rng.randrange(span)
        fingerprint = f"wave-{k:04d}-{rng.getrandbits(32):08x}"
        for j, who in enumerate(rng.sample(range(authors), min(4, authors))):
            records.append((t0 + j * 50_000, rng.randrange(threads), _author(who), None, ["spam"], fingerprint))
        # toxicity burst: 8 flagged comments within a minute in one (likely busy) thread
        t0 = start_ms + rng.randrange(span)
        thread = min(rng.randrange(threads), rng.randrange(threads))
        records.extend(
            (t0 + j * 7_000, thread, _author(rng.randrange(authors)), None, ["toxicity"], None) for j in range(8)
        )
    return records[:n_budget]


def generate_archive(
    n_comments: int,
    *,
    seed: int,
    start: datetime,
    duration: timedelta,
    threads: int,
    authors: int,
    shuffle_within: timedelta,
    incidents: bool = True,
) -> list[WindowInput]:
    """``n_comments`` comments posted in ``[start, start + duration)``, in arrival order (see module doc)."""
    if n_comments < 0 or threads < 1 or authors < 1:
        raise ValueError("n_comments must be >= 0 and threads, authors >= 1")
    if duration <= timedelta(0) or shuffle_within < timedelta(0):
        raise ValueError("duration must be > 0 and shuffle_within >= 0")
    rng = random.Random(seed)
    start_ms = dt_to_ms(start)
    duration_ms = duration // timedelta(milliseconds=1)
    shuffle_ms = shuffle_within // timedelta(milliseconds=1)

    records = _incidents(rng, n_comments, start_ms, duration_ms, threads, authors) if incidents else []
    records = [r for r in records if r[0] < start_ms + duration_ms]
    n_base = n_comments - len(records)
    times = [start_ms + int(rng.random() * duration_ms) for _ in range(n_base)]
    thread_picks = rng.choices(range(threads), cum_weights=_zipf_cum_weights(threads, 1.1), k=n_base)
    author_picks = rng.choices(range(authors), cum_weights=_zipf_cum_weights(authors, 1.0), k=n_base)
    records.extend(
        (t, thread, _author(a), None, None, None)
        for t, thread, a in zip(times, thread_picks, author_picks, strict=True)
    )
    records.sort(key=lambda r: (r[0], r[1], r[2]))

    recent: dict[int, list[tuple[str, int]]] = {}
    copypasta = [f"pasta-{seed:x}-{i:02d}" for i in range(_COPYPASTA)]
    items: list[WindowInput] = []
    for i, (t, thread, author, forced_parent, forced_flags, forced_fp) in enumerate(records):
        history = recent.setdefault(thread, [])
        parent_author: str | None
        if forced_parent is not None:
            parent_author, depth = forced_parent, 1
        elif history and rng.random() < _REPLY_SHARE:
            parent_author, parent_depth = history[rng.randrange(len(history))]
            depth = min(parent_depth + 1, 40)
        else:
            parent_author, depth = None, 0
        if forced_flags is not None:
            flags = forced_flags
        else:
            r = rng.random()
            if r < 0.07:
                flags = rng.choices(CATEGORIES, cum_weights=_CATEGORY_WEIGHTS, k=1)
            elif r < 0.09:
                flags = sorted(set(rng.choices(CATEGORIES, cum_weights=_CATEGORY_WEIGHTS, k=2)))
            else:
                flags = []
        toxicity = 0.55 + 0.45 * rng.random() if flags else 0.5 * rng.random() ** 3
        if forced_fp is not None:
            fingerprint = forced_fp
        elif rng.random() < 0.005:
            fingerprint = copypasta[rng.randrange(_COPYPASTA)]
        else:
            fingerprint = f"fp-{seed:x}-{i:07x}"
        items.append(
            WindowInput(
                comment_id=f"c{seed}-{i:07d}",
                thread_id=f"t{thread:05d}",
                author=author,
                parent_author=parent_author,
                posted_at_ms=t,
                flags=flags,
                toxicity=round(toxicity, 4),
                depth=depth,
                fingerprint=fingerprint,
            )
        )
        history.append((author, depth))
        if len(history) > _RECENT_PER_THREAD:
            del history[0]

    # Arrival order: a delay in [0, shuffle_within) per item bounds how far back anything arrives.
    keys = [item.posted_at_ms + rng.random() * shuffle_ms for item in items]
    order = sorted(range(len(items)), key=keys.__getitem__)
    return [items[i] for i in order]
