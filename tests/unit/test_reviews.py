"""Moderator reviews: request checks, verdicts against flags, the row, and the model version."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from streams import PROJECT_ROOT
from streams.clickhouse.rows import COMMENT_COLUMNS, comment_row
from streams.enrich.flags import CATEGORIES, DEFAULT_CONFIG_PATH, load_moderation_config
from streams.models import CommentEvent, EnrichedComment
from streams.reviews import (
    DEFAULT_REVIEWER,
    REVIEW_COLUMNS,
    ReviewedComment,
    ReviewError,
    ReviewRequest,
    check_verdict,
    parse_review,
    review_id,
    review_record,
    review_row,
    reviewed_comment,
)

AT = datetime(2026, 12, 2, 1, 0, tzinfo=UTC)


def test_a_minimal_review_parses_with_defaults() -> None:
    got = parse_review({"comment_id": " c1 ", "verdict": "Confirm", "category": "SPAM"})
    assert got == ReviewRequest("c1", "confirm", "spam", DEFAULT_REVIEWER, "", "")
    full = parse_review(
        {
            "comment_id": "c1",
            "verdict": "missed",
            "category": "threat",
            "reviewer": "ann",
            "note": "n",
            "thread_id": "t",
        }
    )
    assert (full.reviewer, full.note, full.thread_id) == ("ann", "n", "t")


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"verdict": "confirm", "category": "spam"}, '"comment_id" is required'),
        ({"comment_id": "", "verdict": "confirm", "category": "spam"}, "must not be empty"),
        ({"comment_id": 5, "verdict": "confirm", "category": "spam"}, "must be a string, got int"),
        ({"comment_id": "c1", "verdict": "approve", "category": "spam"}, "unknown verdict 'approve': one of confirm"),
        ({"comment_id": "c1", "verdict": "confirm", "category": "rude"}, "unknown category 'rude': one of toxicity"),
        ({"comment_id": "c1", "verdict": "confirm"}, '"category" is required'),
        ({"comment_id": "c1", "verdict": "confirm", "category": "spam", "score": 1}, "unknown field"),
        ({"comment_id": "c1", "verdict": "confirm", "category": "spam", "note": "x" * 5000}, "longer than 4096"),
    ],
)
def test_bad_reviews_get_one_line_reasons(body: dict[str, object], message: str) -> None:
    with pytest.raises(ReviewError, match=message) as info:
        parse_review(body)
    assert info.value.status == 400 and "\n" not in str(info.value)


def test_unknown_category_lists_every_valid_one() -> None:
    with pytest.raises(ReviewError) as info:
        parse_review({"comment_id": "c1", "verdict": "confirm", "category": "rude"})
    assert all(c in str(info.value) for c in CATEGORIES)


def test_the_comment_lookup_answers_404_or_asks_for_the_thread() -> None:
    request = ReviewRequest("c1", "confirm", "spam")
    with pytest.raises(ReviewError, match="unknown comment_id 'c1'") as info:
        reviewed_comment(request, [])
    assert info.value.status == 404
    with pytest.raises(ReviewError, match="send thread_id") as info:
        reviewed_comment(request, [("t1", [], "m"), ("t2", [], "m")])
    assert info.value.status == 400
    assert reviewed_comment(request, [("t1", ["spam"], "m@1")]) == ReviewedComment("t1", ("spam",), "m@1")


@pytest.mark.parametrize(
    ("verdict", "flags", "ok"),
    [
        ("confirm", ("spam",), True),
        ("reject", ("spam",), True),
        ("missed", (), True),
        ("missed", ("toxicity",), True),
        ("confirm", (), False),
        ("reject", ("toxicity",), False),
        ("missed", ("spam",), False),
    ],
)
def test_verdicts_must_agree_with_the_flags(verdict: str, flags: tuple[str, ...], ok: bool) -> None:
    request = ReviewRequest("c1", verdict, "spam")
    comment = ReviewedComment("t1", flags, "m")
    if ok:
        check_verdict(request, comment)
    else:
        with pytest.raises(ReviewError) as info:
            check_verdict(request, comment)
        assert info.value.status == 409


def test_review_row_and_record() -> None:
    request = ReviewRequest("c1", "reject", "spam", "ann", "not spam")
    comment = ReviewedComment("t1", ("spam",), "comments-lr-v3@abcd1234")
    row = review_row(request, comment, AT)
    assert len(row) == len(REVIEW_COLUMNS)
    record = review_record(row)
    assert record == {
        "review_id": review_id("t1", "c1", "spam", "ann"),
        "thread_id": "t1",
        "comment_id": "c1",
        "category": "spam",
        "verdict": "reject",
        "reviewer": "ann",
        "note": "not spam",
        "model_version": "comments-lr-v3@abcd1234",
        "reviewed_at": "2026-12-02T01:00:00+00:00",
    }
    # The id names the slot (thread, comment, category, reviewer), not the verdict: a changed
    # verdict keeps the id, another reviewer or category gets another.
    changed = review_row(ReviewRequest("c1", "confirm", "spam", "ann"), comment, AT)
    assert changed[0] == row[0]
    assert review_id("t1", "c1", "spam", "bob") != row[0] != review_id("t1", "c1", "toxicity", "ann")


def test_review_columns_match_the_migration() -> None:
    ddl = (PROJECT_ROOT / "schemas" / "clickhouse" / "0005_moderation_reviews.sql").read_text()
    create = ddl[ddl.index("CREATE TABLE") :]
    body = create[create.index("(") + 1 : create.index("ENGINE")]
    declared = [line.split()[0] for line in body.splitlines() if line.strip() and not line.strip().startswith(")")]
    assert tuple(declared) == REVIEW_COLUMNS
    assert "ORDER BY (thread_id, comment_id, category, reviewer)" in ddl
    assert "ReplacingMergeTree(reviewed_at)" in ddl and "PARTITION BY" not in ddl


def test_the_model_version_names_models_and_config(tmp_path: Path) -> None:
    config = load_moderation_config()
    assert config.model_version.startswith("comments-lr-v3+profanity-check@")
    assert len(config.model_version.rsplit("@", 1)[1]) == 8
    assert load_moderation_config().model_version == config.model_version
    # Another threshold is another version, though the models are the same.
    edited = tmp_path / "moderation.toml"
    text = DEFAULT_CONFIG_PATH.read_text(encoding="utf-8")
    edited.write_text(text.replace("username = 0.50", "username = 0.55", 1), encoding="utf-8")
    other = load_moderation_config(edited)
    assert other.model_version != config.model_version
    assert other.model_version.split("@")[0] == config.model_version.split("@")[0]


def test_comment_rows_carry_the_model_version() -> None:
    event = CommentEvent(event_id="e1", source="s", thread_id="t1", comment_id="c1", author="a", posted_at=AT)
    row = comment_row(EnrichedComment(event=event, root_id="c1", depth=0, parent_id=None, model_version="m@1"))
    assert dict(zip(COMMENT_COLUMNS, row, strict=True))["model_version"] == "m@1"
    assert COMMENT_COLUMNS[-1] == "model_version"


@pytest.mark.clickhouse
def test_0005_applies_after_0006_and_the_table_keeps_the_latest_verdict(chdb_root: Path, tmp_path: Path) -> None:
    import shutil
    import uuid

    from streams.clickhouse.client import connect
    from streams.clickhouse.migrations import MIGRATIONS_DIR, migrate

    # A database migrated before 0005 existed (0006 applied) gets 0005 on the next start.
    older = tmp_path / "older"
    older.mkdir()
    for path in MIGRATIONS_DIR.glob("*.sql"):
        if not path.name.startswith("0005_"):
            shutil.copy(path, older / path.name)
    client = connect(f"chdb://{chdb_root}?database=t_rev_{uuid.uuid4().hex[:8]}")
    assert 6 in [m.version for m in migrate(client, older)]
    client.insert("comments", [["t1", "c1"]], column_names=["thread_id", "comment_id"])
    assert [m.version for m in migrate(client)] == [5]
    assert client.query("SELECT model_version FROM comments").result_rows == [("",)]
    comment = ReviewedComment("t1", ("spam",), "m@1")
    first = review_row(ReviewRequest("c1", "reject", "spam", "ann"), comment, AT)
    later = review_row(ReviewRequest("c1", "confirm", "spam", "ann"), comment, AT.replace(minute=5))
    other = review_row(ReviewRequest("c1", "reject", "spam", "bob"), comment, AT)
    for rows in ([first], [first], [later], [other]):  # separate inserts: separate parts
        client.insert("moderation_reviews", rows, column_names=list(REVIEW_COLUMNS))
    final = client.query(
        "SELECT reviewer, toString(verdict) FROM moderation_reviews FINAL ORDER BY reviewer"
    ).result_rows
    assert final == [("ann", "confirm"), ("bob", "reject")]
    client.close()
