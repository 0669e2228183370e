"""The compiled fast paths (streams/native: `analyze`, the model featuriser) against the Python reference: same answers.

`make` builds the extension; these tests fail when it is missing (a broken build must not pass
unnoticed as "Python only"), unless STREAMS_NATIVE=0 says to run without it on purpose.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from streams.enrich import normalize
from streams.enrich.flags import FlagScorer
from streams.enrich.flags.linear import WordFeaturizer
from streams.enrich.normalize import _analyze, _analyze_reference, analyze

WANTED = os.environ.get("STREAMS_NATIVE", "1") != "0"
pytestmark = pytest.mark.skipif(not WANTED, reason="STREAMS_NATIVE=0: the Python reference runs alone")

SAMPLES = Path(__file__).resolve().parents[2] / "streams" / "samples"


def test_the_compiled_fast_path_is_built_and_used() -> None:
    assert normalize.NATIVE, "streams_native is not importable: run `make` (it builds streams/native with cargo)"
    assert normalize._native_analyze_folded is not None
    assert normalize._native_analyze_folded("sh1t  you\n") == ("shit you", ("shit", "you"), frozenset())


# Characters every step of the normalisation reacts to: leetspeak, word characters and separators,
# quotes, whitespace of every kind, masks, letters to stretch or space out, and non-ASCII text that
# maps to ASCII (look-alikes, accents, typographic quotes), stays non-ASCII without letters (emoji)
# or holds letters (which the fast path hands back to Python).
_ALPHABET = "abcehikstuy AZ013457@$!_'.,-*\t\n\r\x0b\x0c\x1c\x1f" + "😀… \u2019éа٣"
_PIECES = ["sh1t", "b!tch", "$hit", "a$$", "1st", "$45", "covid19", "f u c k", "shiiiit", "don't", "''", "@user", "!!!"]
texts = st.lists(st.one_of(st.text(_ALPHABET, max_size=6), st.sampled_from(_PIECES)), max_size=12).map("".join)


@settings(max_examples=3000, deadline=None)
@given(texts)
@example("you are a sh1t!!")
@example("'quoted'  don't \n")
@example("a''b ''c'' d'e")
@example("@!!a!1 !$ $ab ab$ 4chan h3llo10")
@example("shiiiit s h i i i t")
@example("  leading and trailing \x1c")
@example("coool 1000 aaaa!!!")
def test_fast_path_matches_the_reference(text: str) -> None:
    assert _analyze(text) == _analyze_reference(text)


@settings(max_examples=500, deadline=None)
@given(st.text(max_size=40))
def test_fast_path_matches_the_reference_on_any_text(text: str) -> None:
    assert _analyze(text) == _analyze_reference(text)


def test_fast_path_matches_the_reference_on_the_sample_threads() -> None:
    bodies = [line for path in sorted(SAMPLES.glob("*")) if path.is_file() for line in _lines(path)]
    assert len(bodies) > 100
    mismatched = [b for b in bodies if _analyze(b) != _analyze_reference(b)]
    assert mismatched == []


def _lines(path: Path) -> list[str]:
    try:
        return path.read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError:
        return []


def test_characters_the_compiled_featuriser_treats_as_separators_are_neither_word_nor_space() -> None:
    import streams_native

    ranges = streams_native.neither_word_nor_space_ranges()
    assert ranges
    wrong = [
        hex(cp)
        for lo, hi in ranges
        for cp in range(lo, hi + 1)
        if chr(cp).isalnum() or chr(cp).isspace() or chr(cp) == "_" or chr(cp).isascii()
    ]
    assert wrong == []


@pytest.fixture(scope="module")
def featurizer() -> WordFeaturizer:
    scorer = FlagScorer()
    scorer.warm_up()
    (featurizer, _), *_ = scorer._word_featurizers.values()
    assert featurizer._native is not None
    return featurizer


# Comment-like texts: words from the model's vocabulary, links, mentions, the retweet marker,
# apostrophes, emoji (which the compiled code reads itself) and letters outside ASCII (which it
# hands back to Python).
_WORDS = ["you", "are", "a", "fucking", "idiot", "rt", "don't", "'em", "ain't", "bitch", "hoes", "love", "the"]
_NOISE = ["http://t.co/x1", "https://a.b/c?d=1", "www.spam.com", "ww.x", "@user_1", "@", "http://", "😀", "é", "→"]
documents = st.lists(st.sampled_from(_WORDS + _NOISE) | st.text(_ALPHABET, max_size=5), max_size=15).map(" ".join)


@settings(max_examples=1500, deadline=None)
@given(st.lists(documents, min_size=1, max_size=6))
def test_compiled_featuriser_matches_the_reference(featurizer: WordFeaturizer, bodies: list[str]) -> None:
    analyses = [analyze(b, cache=False) for b in bodies]
    texts, words = [a.normalized for a in analyses], [a.words for a in analyses]
    (doc, feat), (sdoc, sfeat, scount) = featurizer.batch(texts, words)
    (rdoc, rfeat), (rsdoc, rsfeat, rscount) = featurizer.batch_reference(texts, words)
    for got, want in ((doc, rdoc), (feat, rfeat), (sdoc, rsdoc), (sfeat, rsfeat), (scount, rscount)):
        assert got.tolist() == want.tolist()
