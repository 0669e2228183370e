from __future__ import annotations

from datetime import UTC, datetime

import msgspec
import pytest

from streams.enrich.authors import observe
from streams.ingest import Rejection, validate
from streams.models import CommentEvent
from streams.settings import SettingsError, load_settings

GOOD = {
    "event_id": "e1",
    "source": "test",
    "thread_id": "t1",
    "comment_id": "c1",
    "author": "  Zoe\u0301  ",
    "posted_at": "2018-03-20T13:30:00-04:00",
    "body": "hello",
}


def encode(**overrides: object) -> bytes:
    return msgspec.json.encode({**GOOD, **overrides})


def test_valid_event_is_normalised() -> None:
    event = validate(encode())
    assert isinstance(event, CommentEvent)
    assert event.author == "Zoé"  # trimmed, NFC-composed
    assert event.posted_at == datetime(2018, 3, 20, 17, 30, tzinfo=UTC)


@pytest.mark.parametrize(
    ("raw", "code", "words"),
    [
        (b"", "empty", "empty"),
        (b"\xff\xfe", "not_json", "JSON"),
        (b"[1, 2]", "schema", "object"),
        (encode(posted_at="2018-03-20T13:30:00"), "schema", "timezone"),
        (encode(event_type="comment.liked"), "schema", "event_type"),
        (encode(author=""), "schema", "author"),
        (encode(author="   "), "schema", "blank"),
        (encode(posted_at="2999-01-01T00:00:00+00:00"), "future_timestamp", "future"),
        (encode(parent_id="c1"), "self_parent", "own parent"),
        (encode(edited_at="2018-01-01T00:00:00+00:00"), "edited_before_posted", "earlier"),
    ],
)
def test_rejections_have_a_code_and_a_reason(raw: bytes, code: str, words: str) -> None:
    result = validate(raw)
    assert isinstance(result, Rejection)
    assert result.reason_code == code
    assert words in result.reason


def test_settings_from_environment() -> None:
    s = load_settings({"STREAMS_BROKER": "kafka://h1:9092, h2:9093", "STREAMS_PARTITIONS": "8", "PATH": "/bin"})
    assert s.bootstrap_servers == ["h1:9092", "h2:9093"]
    assert s.broker_url == "kafka://h1:9092;kafka://h2:9093"
    assert s.partitions == 8


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"STREAMS_PARTITONS": "8"}, "unknown setting STREAMS_PARTITONS"),
        ({"STREAMS_PARTITIONS": "eight"}, "expected a int"),
        ({"STREAMS_PARTITIONS": "0"}, ">= 1"),
        ({"STREAMS_SINK_BATCH_SECONDS": "0"}, "SINK_BATCH"),
        ({"STREAMS_STATE_QUIET_SECONDS": "60"}, "STATE_QUIET_SECONDS must be 0 .off. or at least"),
        ({"STREAMS_STATE_RETENTION_SECONDS": "-1"}, "STATE_RETENTION_SECONDS must be 0"),
    ],
)
def test_bad_settings_are_named(env: dict[str, str], message: str) -> None:
    with pytest.raises(SettingsError, match=message):
        load_settings(env)


def test_author_stats_count_each_comment_once() -> None:
    store: dict[str, object] = {}
    kw = {"author": "ann", "posted_ms": 5000}
    assert observe(store, thread_id="t1", comment_id="c1", flagged=False, **kw).comment_count == 1
    again = observe(store, thread_id="t1", comment_id="c1", flagged=False, **kw)
    assert (again.comment_count, again.flagged_count) == (1, 0)
    reflagged = observe(store, thread_id="t1", comment_id="c1", flagged=True, **kw)
    assert reflagged.flagged_count == 1
    s = observe(store, thread_id="t2", comment_id="c2", flagged=True, author="ann", posted_ms=1000)
    assert (s.comment_count, s.flagged_count, s.thread_count, s.first_seen_ms) == (2, 2, 2, 1000)


def test_every_setting_is_in_the_readmes_settings_table() -> None:
    """Docs match the code: each STREAMS_* setting has a row (`A` / `_B` names A's prefix + B)."""
    import dataclasses
    import re
    from pathlib import Path

    from streams.settings import ENV_PREFIX, Settings

    known = {ENV_PREFIX + f.name.upper() for f in dataclasses.fields(Settings)}
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    documented: set[str] = set()
    for row in re.findall(r"^\| (`STREAMS_[^|]+)\|", readme, flags=re.M):
        names = re.findall(r"`([A-Z_]+)`", row)
        first = names[0]
        documented.add(first)
        for suffix in names[1:]:
            if suffix.startswith(ENV_PREFIX):
                documented.add(suffix)
                continue
            cuts = [i for i, c in enumerate(first) if c == "_"]
            documented.update(first[:i] + suffix for i in cuts if first[:i] + suffix in known)
    assert known - documented == set()


def test_malloc_arenas_are_capped_on_glibc_and_left_alone_at_zero() -> None:
    import platform

    from streams.cli import limit_malloc_arenas

    assert limit_malloc_arenas(0) is False
    if platform.libc_ver()[0] == "glibc":
        assert limit_malloc_arenas(2) is True
