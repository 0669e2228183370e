"""Any bytes at all become an event or a rejection: sizes in bytes, dates ClickHouse stores, nesting,
invalid UTF-8, unknown keys kept; dead letters keep the bytes (issue 11)."""

from __future__ import annotations

import hashlib
import random

import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from streams import deadletters
from streams.ingest import Rejection, validate
from streams.models import (
    MAX_BODY_BYTES,
    MAX_MESSAGE_BYTES,
    MAX_NAME_BYTES,
    MAX_RAW_EVENT_BYTES,
    CommentEvent,
)

GOOD = {
    "event_id": "e1",
    "source": "test",
    "thread_id": "t1",
    "comment_id": "c1",
    "author": "ann",
    "posted_at": "2018-03-20T13:30:00+00:00",
    "body": "hello",
}


def encode(**overrides: object) -> bytes:
    return msgspec.json.encode({**GOOD, **overrides})


def rejected(raw: bytes) -> Rejection:
    result = validate(raw)
    assert isinstance(result, Rejection), result
    return result


def test_invalid_utf8_inside_a_string_is_a_rejection() -> None:
    raw = encode(body="x").replace(b'"x"', b'"\xff\xfe"')
    assert rejected(raw).reason_code in ("not_utf8", "not_json")


def test_deep_nesting_in_any_field_is_a_rejection() -> None:
    deep = b"[" * 5000 + b"]" * 5000
    for key in (b'"body"', b'"extra"'):
        raw = b'{"event_id":"e1",' + key + b":" + deep + b"}"
        assert rejected(raw).reason_code in ("too_deep", "schema", "not_json")


@pytest.mark.parametrize(
    ("field", "value", "code"),
    [
        ("posted_at", "0001-01-01T00:00:00+05:00", "out_of_range"),
        ("posted_at", "1850-06-01T00:00:00+00:00", "out_of_range"),
        ("edited_at", "2400-01-01T00:00:00+00:00", "future_timestamp"),
    ],
)
def test_dates_outside_what_clickhouse_stores_are_rejected(field: str, value: str, code: str) -> None:
    assert rejected(encode(**{field: value})).reason_code == code


def test_sizes_are_bytes_not_characters() -> None:
    emoji = "\U0001f600"  # 4 bytes of UTF-8, one character
    fits = MAX_BODY_BYTES // 4
    assert isinstance(validate(encode(body=emoji * fits)), CommentEvent)
    assert rejected(encode(body=emoji * (fits + 1))).reason_code == "too_large"
    assert rejected(encode(parent_author="é" * (MAX_NAME_BYTES // 2 + 1))).reason_code == "too_large"
    assert rejected(encode(thread_title="x" * 300_000)).reason_code in ("schema", "too_large")
    assert rejected(b" " * (MAX_RAW_EVENT_BYTES + 1)).reason_code == "too_large"


def test_an_accepted_event_fits_a_message_with_room_for_enrichment() -> None:
    biggest = validate(
        encode(
            body="\U0001f600" * (MAX_BODY_BYTES // 4),
            thread_title="t" * 4096,
            url="u" * 8192,
            parent_author="p" * 512,
            author="a" * 512,
        )
    )
    assert isinstance(biggest, CommentEvent)
    assert len(msgspec.json.encode(biggest)) < MAX_MESSAGE_BYTES // 3


def test_unknown_keys_are_kept_not_dropped() -> None:
    event = validate(encode(parnet_id="c0", extra={"a": [1, 2]}))
    assert isinstance(event, CommentEvent)
    assert event.parent_id is None
    assert event.unknown_fields == {"parnet_id": '"c0"', "extra": '{"a":[1,2]}'}
    assert validate(encode()).unknown_fields is None  # type: ignore[union-attr]


def mutate(raw: bytes, rng: random.Random) -> bytes:
    """One of the fuzz run's mutations: byte flips, truncation, NULs, invalid UTF-8, nesting, huge strings."""
    choice = rng.randrange(7)
    data = bytearray(raw)
    if choice == 0 and data:
        for _ in range(rng.randint(1, 5)):
            data[rng.randrange(len(data))] = rng.randrange(256)
    elif choice == 1:
        data = data[: rng.randrange(len(data) + 1)]
    elif choice == 2:
        data.insert(rng.randrange(len(data) + 1), 0)
    elif choice == 3:
        data[rng.randrange(len(data))] = 0xC3  # a lone UTF-8 lead byte
    elif choice == 4:
        depth = rng.choice([10, 1500, 100_000])
        data = bytearray(raw[:-1] + b',"n":' + b"[" * depth + b"]" * depth + b"}")
    elif choice == 5:
        data = bytearray(raw.replace(b'"hello"', b'"' + b"z" * rng.choice([10, 300_000, 2_000_000]) + b'"'))
    else:
        data = bytearray(raw.replace(b'"t1"', rng.choice([b"5", b"null", b"[]", b"{}", b'"\\ud800"'])))
    return bytes(data)


def test_ten_thousand_mutations_never_raise() -> None:
    rng = random.Random(11)
    base = encode()
    for _ in range(10_000):
        result = validate(mutate(base, rng))
        assert isinstance(result, CommentEvent | Rejection)
        if isinstance(result, Rejection):
            assert result.reason_code != "internal", result.reason


@settings(max_examples=500, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(st.binary(max_size=2048))
def test_arbitrary_bytes_give_an_event_or_a_rejection(raw: bytes) -> None:
    result = validate(raw)
    assert isinstance(result, CommentEvent | Rejection)


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(st.text(max_size=20), st.recursive(st.none() | st.integers() | st.text(), st.lists), max_size=8))
def test_arbitrary_json_objects_give_an_event_or_a_rejection(extra: dict[str, object]) -> None:
    result = validate(msgspec.json.encode({**GOOD, **extra}))
    assert isinstance(result, CommentEvent | Rejection)
    if isinstance(result, Rejection):
        assert result.reason_code != "internal", result.reason


def test_dead_letters_keep_bytes_and_describe_what_they_cut() -> None:
    small = deadletters.dead_letter("schema", "bad", stage="ingest", raw=b"\xff{", topic="t", partition=0, offset=5)
    value, headers = deadletters.to_message(small)
    assert value == b"\xff{"  # the bytes as they were, no base64
    back = deadletters.from_message(value, headers)
    assert back == small
    huge_raw = b"x" * (MAX_MESSAGE_BYTES + 10)
    huge = deadletters.dead_letter("too_large", "big", stage="feed", raw=huge_raw, topic="t", partition=-1, offset=-1)
    value, headers = deadletters.to_message(huge)
    assert huge.truncated and len(value) == deadletters.TRUNCATED_PREFIX_BYTES
    assert huge.raw_length == len(huge_raw) and huge.raw_sha256 == hashlib.sha256(huge_raw).hexdigest()
    assert len(value) + sum(len(k) + len(v) for k, v in headers) < MAX_MESSAGE_BYTES


def test_dead_letter_ids_follow_the_origin_when_a_feeder_gives_one() -> None:
    def letter(offset: int, origin: str = "") -> str:
        d = deadletters.dead_letter(
            "schema", "bad", stage="ingest", raw=b"x", topic="t", partition=0, offset=offset, origin=origin
        )
        return d.dead_letter_id

    assert letter(7) == letter(7) != letter(8)  # a replay of the topic lands once
    assert letter(7, "/data/a.jsonl:3") == letter(99, "/data/a.jsonl:3")  # a re-feed of the line too
    assert letter(7, "/data/a.jsonl:3") != letter(7, "/data/a.jsonl:4")
