"""Surface features of a body: counts, shouting, stretched characters, and the copy fingerprint."""

from __future__ import annotations

import re

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from streams.enrich.text import TextFeatures, count_links, fingerprint, text_features


def test_features_of_a_typical_comment() -> None:
    body = "WOW!!!! Check www.example.com and http://bit.ly/x @bob, it's soooo GOOD"
    f = text_features(body)
    assert f.body_length == len(body)
    assert f.link_count == 2
    assert f.mention_count == 1
    assert f.repeated_char_runs == 2  # "!!!!" and "oooo"
    letters = [c for c in body if c.isalpha()]
    assert f.caps_ratio == round(sum(c.isupper() for c in letters) / len(letters), 4)
    assert f.word_count == 14
    assert re.fullmatch(r"[0-9a-f]{16}", f.fingerprint)


def test_empty_body() -> None:
    assert text_features("") == TextFeatures(
        body_length=0,
        word_count=0,
        link_count=0,
        mention_count=0,
        caps_ratio=0.0,
        repeated_char_runs=0,
        fingerprint="",
    )


def test_no_letters_means_no_caps_ratio_and_no_fingerprint() -> None:
    f = text_features("12345 !!! :)")
    assert f.caps_ratio == 0.0
    assert f.fingerprint == ""
    assert f.repeated_char_runs == 0  # "!!!" is only three


def test_caps_ratio_counts_letters_only() -> None:
    assert text_features("ABC def 123").caps_ratio == 0.5
    assert text_features("ÄÖ äö").caps_ratio == 0.5  # non-ASCII letters count too
    assert text_features("SHOUTING!").caps_ratio == 1.0


@pytest.mark.parametrize(
    ("body", "links"),
    [
        ("see https://example.org/a?b=c and www.foo.net", 2),
        ("bit.ly/abc or cnn.com, then google.co.uk/maps", 3),
        ("The U.S. and e.g. Dr. Smith. End.", 0),  # abbreviations are not links
        ("mail me at me@example.com", 0),  # an address is not a link
        ("no dots here", 0),
    ],
)
def test_link_count(body: str, links: int) -> None:
    assert count_links(body) == links
    assert text_features(body).link_count == links


def test_mentions_skip_email_addresses() -> None:
    assert text_features("@alice and @bob_2 but not me@example.com").mention_count == 2


def test_word_count_uses_normalised_words() -> None:
    assert text_features("Hello, world! Don't panic.").word_count == 4
    assert text_features("f u c k this").word_count == 2  # spaced letters are one word


def test_fingerprint_folds_case_spacing_digits_punctuation_and_disguises() -> None:
    base = fingerprint("Buy cheap pills now at our shop")
    assert base == fingerprint("BUY   cheap pills now, at our shop!!!")
    assert base == fingerprint("Buy cheap pills now at our shop 4242")
    assert base == fingerprint("Вuy cheap p1lls now at our shop")  # Cyrillic В, leet 1 -> i
    assert base == fingerprint("Buy che\u200bap pills now at our shop")
    assert base != fingerprint("Buy cheap pills later at our shop")
    assert fingerprint("") == ""


def test_fingerprint_is_stable_across_processes() -> None:
    # A fixed value: the fingerprint keys state in Kafka tables and ClickHouse rows.
    assert fingerprint("Hello world") == "6a4e8c267246645e"  # blake2b-64 of "helloworld"
    assert fingerprint("Hello world") == fingerprint("hello, WORLD")


def test_text_features_is_a_frozen_msgspec_struct() -> None:
    f = text_features("hi")
    assert isinstance(f, msgspec.Struct)
    with pytest.raises(AttributeError):
        f.body_length = 3  # type: ignore[misc]


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=200))
def test_features_never_fail(body: str) -> None:
    f = text_features(body)
    assert f.body_length == len(body)
    assert 0.0 <= f.caps_ratio <= 1.0
    assert f.fingerprint == "" or re.fullmatch(r"[0-9a-f]{16}", f.fingerprint)
