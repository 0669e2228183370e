"""bench/train_flags.py --reviews: moderator verdicts as training rows (the option is off by default)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from streams import PROJECT_ROOT

pytest.importorskip("sklearn")
sys.path.insert(0, str(PROJECT_ROOT / "bench"))
import train_flags

REVIEWS = [
    {"thread_id": "t", "comment_id": "c1", "category": "toxicity", "verdict": "confirm", "body": "you idiot"},
    {"thread_id": "t", "comment_id": "c1", "category": "toxicity", "verdict": "reject", "body": "you idiot"},
    {"thread_id": "t", "comment_id": "c1", "category": "spam", "verdict": "reject", "body": "you idiot"},
    {"thread_id": "t", "comment_id": "c2", "category": "threat", "verdict": "missed", "body": "or else", "author": "z"},
    {"thread_id": "t", "comment_id": "c3", "category": "username", "verdict": "confirm", "body": "hello"},
    {"thread_id": "t", "comment_id": "c4", "category": "spam", "verdict": "confirm", "body": ""},
]


def test_verdicts_become_labels_per_comment() -> None:
    rows = {r.row_id: r for r in train_flags.review_rows(REVIEWS)}
    assert set(rows) == {"t:c1", "t:c2"}  # username has no text head; an empty body teaches nothing
    c1 = rows["t:c1"]
    assert (c1.set, c1.text) == ("reviews", "you idiot")
    assert c1.labels["toxicity"] == 0.5  # two reviewers disagree: a soft label
    assert c1.labels["spam"] == 0.0 and c1.labels["threat"] is None
    assert rows["t:c2"].labels["threat"] == 1.0 and rows["t:c2"].author == "z"


def test_the_export_reads_as_a_json_array_or_json_lines(tmp_path: Path) -> None:
    array = tmp_path / "reviews.json"
    array.write_text("[\n" + ",\n".join(json.dumps(r) for r in REVIEWS) + "\n]\n", encoding="utf-8")
    lines = tmp_path / "reviews.jsonl"
    lines.write_text("".join(json.dumps(r) + "\n" for r in REVIEWS), encoding="utf-8")
    assert train_flags.read_reviews(array) == train_flags.read_reviews(lines) == REVIEWS


def test_reviews_are_off_by_default() -> None:
    assert train_flags.build_parser().parse_args([]).reviews is None
    assert train_flags.build_parser().parse_args(["--reviews", "r.json"]).reviews == Path("r.json")
