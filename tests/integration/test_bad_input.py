"""Every input issue 11 saw lost now lands as a comment or a dead letter, and the worker stays up."""

from __future__ import annotations

import random
from pathlib import Path

import msgspec
import pytest

from streams.ingest import validate
from streams.models import MAX_BODY_BYTES, CommentEvent
from tests.integration.harness import Pipeline
from tests.unit.test_validation_bounds import mutate

pytestmark = [pytest.mark.kafka, pytest.mark.clickhouse]


def event(i: int, prefix: str, **overrides: object) -> bytes:
    return msgspec.json.encode(
        {
            "event_id": f"{prefix}-e{i}",
            "source": "test",
            "thread_id": f"{prefix}-t{i % 7}",
            "comment_id": f"{prefix}{i:05d}x{i:05d}",
            "author": f"author{i % 13}",
            "posted_at": "2024-05-01T12:00:00+00:00",
            "body": "hello",
            **overrides,
        }
    )


def dead_letters(p: Pipeline, where: str) -> list[tuple[object, ...]]:
    return p.query(
        f"SELECT reason_code, raw_length, length(raw), truncated, origin FROM dead_letters FINAL WHERE {where}"
    )


def test_inputs_that_were_lost_now_land(pipeline: Pipeline) -> None:
    bad_utf8 = event(1, "lost").replace(b'"hello"', b'"caf\xc3("')
    big_junk = b'{"lost": ' + b"x" * 900_000
    max_body = event(2, "lost", body="\U0001f600" * (MAX_BODY_BYTES // 4))
    too_long_body = event(3, "lost", body="y" * 600_000)
    year_one = event(4, "lost", posted_at="0001-01-01T00:00:00+05:00")
    misspelt = event(5, "lost", parnet_id="lost00001x00001")
    stats = pipeline.feed_raw("k", [bad_utf8, big_junk, max_body, too_long_body, year_one, misspelt])
    assert stats.sent == 6
    mine = "stage = 'ingest' AND position(raw, 'lost') > 0"
    pipeline.wait_until(f"SELECT count() FROM dead_letters FINAL WHERE {mine}", lambda n: n >= 4, timeout=120)
    pipeline.wait_until("SELECT count() FROM comments FINAL WHERE comment_id LIKE 'lost%'", lambda n: n >= 2)
    letters = dead_letters(pipeline, mine)
    codes = sorted(str(r[0]) for r in letters)
    # invalid UTF-8 inside a string, unterminated JSON, a body over its byte limit, year 1
    assert codes in (
        ["not_json", "not_utf8", "out_of_range", "schema"],
        ["not_json", "not_json", "out_of_range", "schema"],
    )
    assert (len(big_junk), len(big_junk), 0) in {(r[1], r[2], r[3]) for r in letters}  # kept whole, no base64
    assert pipeline.scalar("SELECT length(body) FROM comments FINAL WHERE comment_id = 'lost00002x00002'") == (
        MAX_BODY_BYTES
    )
    unknown = pipeline.scalar("SELECT unknown_fields FROM comments FINAL WHERE comment_id = 'lost00005x00005'")
    assert unknown == {"parnet_id": '"lost00001x00001"'}
    assert pipeline.worker.running()


def test_feed_dead_letters_a_line_kafka_cannot_carry_and_goes_on(pipeline: Pipeline, tmp_path: Path) -> None:
    path = tmp_path / "mixed.jsonl"
    lines = [event(1, "feedA"), b'{"huge": "' + b"z" * 2_000_000 + b'"}', event(2, "feedA"), b"not json"]
    path.write_bytes(b"\n".join(lines) + b"\n")
    inserted = pipeline.metric("streams_clickhouse_rows_total", table="dead_letters")
    for _ in range(2):  # fed twice: the dead letters land once (they are keyed by file and line)
        done = pipeline.cli("feed", str(path))
        assert done.returncode == 0, done.stderr.decode()
        assert b"too large for Kafka" in done.stderr
    pipeline.wait_until("SELECT count() FROM comments FINAL WHERE comment_id LIKE 'feedA%'", lambda n: n >= 2)
    # All four inserted (counted by the sink: a merge may already have collapsed the repeats) ...
    pipeline.wait_for_metric(
        "streams_clickhouse_rows_total", lambda n: n >= inserted + 4, table="dead_letters", timeout=90
    )
    # ... and two remain: the second feed's are the same dead letters.
    letters = dead_letters(pipeline, f"origin LIKE '{path}:%'")
    assert sorted((str(r[4]).rsplit(":", 1)[1], r[0]) for r in letters) == [("2", "too_large"), ("4", "not_json")]
    huge = next(r for r in letters if r[0] == "too_large")
    assert huge[1] == len(lines[1]) and huge[3] == 1 and huge[2] == 64 * 1024


def test_fuzz_every_line_is_a_comment_or_a_dead_letter(fresh_pipeline: Pipeline) -> None:
    rng = random.Random(2024)
    lines = [event(i, "fzv") for i in range(500)] + [mutate(event(i, "fzm"), rng) for i in range(2000)]
    rng.shuffle(lines)
    expected_keys: set[tuple[str, str]] = set()
    expected_rejections = 0
    for raw in lines:
        result = validate(raw)
        if isinstance(result, CommentEvent):
            expected_keys.add((result.thread_id, result.comment_id))
        else:
            expected_rejections += 1
    assert 300 < expected_rejections < 2000  # the mutations do reject many lines, not all
    p = fresh_pipeline.start()
    assert p.feed_raw("fz", lines).sent == 2500
    comments = "SELECT uniqExact(thread_id, comment_id) FROM comments"
    letters = "SELECT count() FROM dead_letters FINAL"
    p.wait_until(letters, lambda n: n >= expected_rejections, timeout=240)
    p.wait_until(comments, lambda n: n >= len(expected_keys), timeout=240)
    assert (p.scalar(comments), p.scalar(letters)) == (len(expected_keys), expected_rejections)
    assert p.worker.running()
