"""Assemble EnrichedComment rows from a thread placement, text features, language and flags (pure)."""

from __future__ import annotations

from collections.abc import MutableMapping, Sequence
from datetime import UTC, datetime
from typing import Any

import msgspec

from streams.enrich.authors import AuthorStats
from streams.enrich.flags import FlagScorer, ScoreInput
from streams.enrich.language import detect_languages
from streams.enrich.text import TextFeatures
from streams.enrich.thread import Placement
from streams.models import EnrichedComment

#: How many distinct authors we remember per text fingerprint (enough to call it a wave).
MAX_AUTHORS_PER_FINGERPRINT = 50


def note_fingerprint(store: MutableMapping[str, Any], fingerprint: str, author: str) -> int:
    """Remember that `author` posted this text; return how many OTHER authors posted it before."""
    if not fingerprint:
        return 0
    key = f"fp|{fingerprint}"
    authors = list(store.get(key) or [])
    others = sum(1 for a in authors if a != author)
    if author not in authors and len(authors) < MAX_AUTHORS_PER_FINGERPRINT:
        store[key] = [*authors, author]
    return others


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
