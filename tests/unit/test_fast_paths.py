"""Fast paths of pure functions against the plain versions they replaced (same answers, same state)."""

from __future__ import annotations

import re
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from streams.enrich.compose import MAX_AUTHORS_PER_FINGERPRINT, note_fingerprint
from streams.enrich.normalize import _has_letter_triple

_ANY_TRIPLE = re.compile(r"(.)\1\1", re.DOTALL)


def reference_letter_triple(text: str) -> bool:
    return any(m.group(1).isalnum() for m in _ANY_TRIPLE.finditer(text))


runs = st.lists(st.tuples(st.sampled_from("aA1._!\n é٣ⅷ²_-"), st.integers(1, 4)), max_size=10)


@settings(max_examples=500, deadline=None)
@given(runs)
def test_letter_triple_is_the_plain_check(parts: list[tuple[str, int]]) -> None:
    text = "".join(ch * n for ch, n in parts)
    assert _has_letter_triple(text) == reference_letter_triple(text)


def reference_note_fingerprint(store: dict[str, Any], fingerprint: str, author: str, posted_ms: int) -> int:
    """note_fingerprint without its fast path (the code before it)."""
    if not fingerprint:
        return 0
    key = f"fp|{fingerprint}"
    first_seen: dict[str, int] = {}
    for name, at in store.get(key) or []:
        first_seen[name] = min(at, first_seen.get(name, at))
    others = sum(1 for name, at in first_seen.items() if name != author and at < posted_ms)
    if posted_ms < first_seen.get(author, posted_ms + 1):
        first_seen[author] = posted_ms
        kept = sorted(first_seen.items(), key=lambda item: (item[1], item[0]))[:MAX_AUTHORS_PER_FINGERPRINT]
        updated = [[name, at] for name, at in kept]
        if updated != store.get(key):
            store[key] = updated
    return others


copies = st.lists(st.tuples(st.sampled_from([f"a{i}" for i in range(70)]), st.integers(0, 40)), max_size=150)


@settings(max_examples=300, deadline=None)
@given(copies)
def test_fingerprint_counts_and_state_are_the_plain_ones(posts: list[tuple[str, int]]) -> None:
    fast: dict[str, Any] = {}
    plain: dict[str, Any] = {}
    for author, posted_ms in posts:
        assert note_fingerprint(fast, "f", author, posted_ms) == reference_note_fingerprint(
            plain, "f", author, posted_ms
        )
        assert fast == plain
