"""Normalisation for matching: disguised words become plain words, innocent text stays innocent."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from streams.enrich.normalize import TermMatcher, analyze, collapse_repeats, normalize, tokens


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("Sh1t happens", "shit happens"),  # leetspeak digit inside a word
        ("$hit and a$$", "shit and ass"),  # $ at a word's start / end
        ("b!tch", "bitch"),  # ! between letters
        ("b@stard", "bastard"),
        ("5TUP1D", "stupid"),  # digits mixed into letters
        ("sh\u200bit", "shit"),  # zero-width space inside a word
        ("f\u00adu\u200dc\u2060k\ufeff", "fuck"),  # soft hyphen, ZWJ, word joiner, BOM
        ("ѕһіt сrар", "shit crap"),  # Cyrillic look-alikes
        ("ΡΙΑΝΟ ΚΕΥ", "piano key"),  # Greek capitals
        ("ＳＨＩＴ", "shit"),  # fullwidth
        ("𝐟𝐮𝐜𝐤", "fuck"),  # mathematical bold
        ("fück", "fuck"),  # accent stripped
        ("shiiiiit", "shiit"),  # 3+ repeats -> 2
        ("f u c k you", "fuck you"),  # spaced-out letters joined
        ("f.u.c.k off", "fuck off"),
        ("don’t", "don't"),  # typographic apostrophe
        ("Hello,   World!\n\tNew line", "hello, world! new line"),  # whitespace runs -> one space
    ],
)
def test_normalize_undoes_disguises(raw: str, expected: str) -> None:
    assert normalize(raw) == expected


@pytest.mark.parametrize(
    "text",
    [
        "It cost $4,600 in 2018.",
        "He finished 1st, I was 2nd.",
        "We drove 10km to 4chan's office",  # quantities and names with a leading digit
        "covid19 cases fell",  # version-like tail
        "@john_smith wow!!!",  # a mention's @ is not an "a"; ! after a word is punctuation
        "u s",  # two spaced letters are not joined
        "good bookkeeper",  # double letters stay
    ],
)
def test_normalize_leaves_ordinary_text_alone(text: str) -> None:
    assert normalize(text) == " ".join(text.casefold().split())


def test_tokens_keep_word_boundaries() -> None:
    assert tokens("Don't re-send it, O'Brien's 'quoted' text...") == [
        "don't",
        "re",
        "send",
        "it",
        "o'brien's",
        "quoted",
        "text",
    ]
    assert tokens("") == []
    assert analyze("Sh1t, man").words == ("shit", "man")


def test_collapse_repeats() -> None:
    assert collapse_repeats("shiiiit") == "shiit"
    assert collapse_repeats("shiit", keep=1) == "shit"
    with pytest.raises(ValueError, match="keep must be 1 or 2"):
        collapse_repeats("x", keep=3)


def test_analysis_records_stretched_words() -> None:
    an = analyze("shiiiit that is soooo good")
    assert an.normalized == "shiit that is soo good"
    assert an.elongated == frozenset({"shiit", "soo"})
    assert analyze("good bookkeeper").elongated == frozenset()


MATCHER = TermMatcher(["shit", "fuck*", "*shit", "piece of shit", "nigger", "ass", "moron"])


def _terms(text: str) -> list[str]:
    an = analyze(text)
    return [h.term for h in MATCHER.find(an.normalized, an.words, an.wordset, collapse=an.elongated)]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("sh1t", ["shit", "*shit"]),
        ("shiiiiit", ["shit", "*shit"]),  # 3+ repeats: collapsed to 2, matcher tries 1
        ("f u c k this", ["fuck*"]),
        ("FUUUUCKING hell", ["fuck*"]),  # elongated and a prefix term at once
        ("sh\u200bit", ["shit", "*shit"]),
        ("ѕһіt", ["shit", "*shit"]),
        ("that's bullshit", ["*shit"]),  # suffix term
        ("you piece of shit", ["shit", "*shit", "piece of shit"]),  # multi-word term
        ("f*ck and sh*t", ["shit", "fuck*"]),  # masked words
        ("niiiigger", ["nigger"]),
        ("what a m0r0n", ["moron"]),
    ],
)
def test_matcher_finds_disguised_terms(text: str, expected: list[str]) -> None:
    assert _terms(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "class assignment passed",  # "ass" only as part of other words
        "The Niger river",  # equals "nigger" with one letter less, but was never doubled
        "cocktail hour in Scunthorpe",
        "piece of cake",
        "s**",  # one visible letter is not enough to unmask
    ],
)
def test_matcher_ignores_innocent_text(text: str) -> None:
    assert _terms(text) == []


def test_matcher_without_precomputed_words() -> None:
    assert [h.term for h in MATCHER.find(normalize("You MORON"))] == ["moron"]


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet=st.sampled_from(list("abst hi1!$@03 .-*_'\n\tÄöСсаоＦ\u200b😀")), max_size=40))
def test_normalize_is_idempotent(text: str) -> None:
    once = normalize(text)
    assert normalize(once) == once


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=60))
def test_normalize_never_fails_and_words_come_from_the_text(text: str) -> None:
    an = analyze(text)
    assert an.wordset == frozenset(an.words)
    for word in an.words:
        assert word in an.normalized


def test_term_reported_with_the_first_matching_word_in_the_text() -> None:
    # Several words match "fuck*": the first in the text is reported, whatever the set order.
    matcher = TermMatcher(["fuck*", "shit"])
    assert [h.matched for h in matcher.find(normalize("fucker and fucking"))] == ["fucker"]
    assert [h.matched for h in matcher.find(normalize("fucking and fucker"))] == ["fucking"]
    assert [h.matched for h in matcher.find(normalize("shiit and shitt"))] == ["shiit"]
    assert [h.matched for h in matcher.find(normalize("shitt and shiit"))] == ["shitt"]
