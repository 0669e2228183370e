"""Assemble EnrichedComment rows from a thread placement, text features, language and flags (pure)."""

from __future__ import annotations

from collections.abc import MutableMapping, Sequence
from datetime import UTC, datetime
from typing import Any

import msgspec

from streams.enrich.authors import AuthorStats
from streams.enrich.flags import FlagScorer, ScoreInput
from streams.enrich.language import detect_languages
from streams.enrich.quiet import HOUR_MS, QuietSchedule
from streams.enrich.text import TextFeatures
from streams.enrich.thread import Placement
from streams.models import EnrichedComment

#: How many distinct authors we remember per text fingerprint (enough to call it a wave): the ones
#: who posted it first in event time, so which ones are kept does not depend on arrival order.
MAX_AUTHORS_PER_FINGERPRINT = 50
#: Stand-in posting time for authors stored by the old state shape (a bare list of names, in
#: arrival order, without times): they count as having posted before anything else.
_UNKNOWN_EARLY_MS = -(2**53)


def note_fingerprint(store: MutableMapping[str, Any], fingerprint: str, author: str, posted_ms: int) -> int:
    """Remember that `author` posted this text at `posted_ms` (event time, epoch milliseconds);
    return how many OTHER authors posted it before `posted_ms` (strictly earlier).

    State per fingerprint: each author's earliest posting time, the `MAX_AUTHORS_PER_FINGERPRINT`
    earliest ones, as ``[[author, posted_ms], ...]`` sorted by (time, author). Counting by event time
    instead of "seen before" makes the answer independent of the order in which copies arrive,
    provided every copy posted earlier has been noted already (one with an earlier posting time
    that arrives later does not change the count of comments scored before it: see README,
    "Moderation flags"). Copies posted at the same time do not count each other: their arrival
    order is arbitrary, so counting them would make a replay disagree with the first run.
    """
    if not fingerprint:
        return 0
    key = f"fp|{fingerprint}"
    stored = store.get(key) or []
    if stored and not isinstance(stored[0], str):
        # The common case, answered without rebuilding the list: this author's copy is noted already,
        # at or before this one (a redelivery, or a later copy), so nothing changes.
        others, own = 0, None
        for name, at in stored:
            if name == author:
                own = at
            elif at < posted_ms:
                others += 1
        if own is not None and own <= posted_ms:
            return others
        if own is None and len(stored) == MAX_AUTHORS_PER_FINGERPRINT:
            # A new author of a text copied this often: kept only if it sorts among the earliest
            # (the list is sorted by (time, author)); a later one changes nothing (spam waves).
            last_name, last_at = stored[-1]
            if (posted_ms, author) > (last_at, last_name):
                return others
    first_seen: dict[str, int] = {}
    for entry in stored:
        if isinstance(entry, str):  # old state shape
            name, at = entry, _UNKNOWN_EARLY_MS
        else:
            name, at = str(entry[0]), int(entry[1])
        first_seen[name] = min(at, first_seen.get(name, at))
    others = sum(1 for name, at in first_seen.items() if name != author and at < posted_ms)
    if posted_ms < first_seen.get(author, posted_ms + 1):
        first_seen[author] = posted_ms
        kept = sorted(first_seen.items(), key=lambda item: (item[1], item[0]))[:MAX_AUTHORS_PER_FINGERPRINT]
        updated = [[name, at] for name, at in kept]
        if updated != store.get(key):
            store[key] = updated
    return others


def touch_fingerprint(
    store: MutableMapping[str, Any], schedule: QuietSchedule, scope: str, fingerprint: str, at_ms: int
) -> None:
    """Note that this text was seen at `at_ms` (the retention's clock: wall clock or event time)."""
    if not fingerprint:
        return
    key = f"fl|{fingerprint}"
    last = store.get(key)
    if last is not None and at_ms // HOUR_MS <= last // HOUR_MS:
        return  # scheduled in this hour or a later one already
    schedule.touch(scope, fingerprint, at_ms, last)
    store[key] = at_ms


def retire_fingerprints(
    store: MutableMapping[str, Any], schedule: QuietSchedule, scope: str, quiet_before_ms: int
) -> int:
    """Forget the texts of `scope` not seen since before `quiet_before_ms` (on the clock they were
    touched by): copies further apart than that no longer count each other. Returns how many."""
    forgotten = 0
    for fingerprint in schedule.due(scope, quiet_before_ms):
        last = store.get(f"fl|{fingerprint}")
        if last is not None and last < quiet_before_ms:
            del store[f"fl|{fingerprint}"]
            if f"fp|{fingerprint}" in store:
                del store[f"fp|{fingerprint}"]
            forgotten += 1
    return forgotten


def enrich_placements(
    placements: Sequence[Placement],
    features: Sequence[TextFeatures],
    duplicate_authors: Sequence[int],
    *,
    scorer: FlagScorer,
    now: datetime | None = None,
) -> list[EnrichedComment]:
    """One EnrichedComment per placement; language and flags are computed for the batch at once."""
    now = now or datetime.now(UTC)
    bodies = [p.event.body for p in placements]
    languages = detect_languages(bodies)
    flags = scorer.score_many(
        [
            ScoreInput(body=p.event.body, author=p.event.author, duplicate_authors=d)
            for p, d in zip(placements, duplicate_authors, strict=True)
        ]
    )
    out = []
    for p, f, lang, fl in zip(placements, features, languages, flags, strict=True):
        out.append(
            EnrichedComment(
                event=p.event,
                root_id=p.root_id,
                depth=p.depth,
                parent_id=p.parent_id,
                parent_missing=p.parent_missing,
                body_length=f.body_length,
                word_count=f.word_count,
                link_count=f.link_count,
                mention_count=f.mention_count,
                caps_ratio=f.caps_ratio,
                repeated_char_runs=f.repeated_char_runs,
                fingerprint=f.fingerprint,
                language=lang,
                flags=fl,
                model_version=scorer.config.model_version,
                version=p.revision,
                enriched_at=now,
            )
        )
    return out


def with_author_stats(comment: EnrichedComment, stats: AuthorStats) -> EnrichedComment:
    return msgspec.structs.replace(
        comment,
        author_comment_count=stats.comment_count,
        author_flagged_count=stats.flagged_count,
        author_thread_count=stats.thread_count,
        author_first_seen=datetime.fromtimestamp(stats.first_seen_ms / 1000, UTC),
    )
