"""Moderator reviews end to end: the sample thread through a real worker (with an API token), verdicts
posted to its POST /reviews and with `streams review`, refusals (401, 415, 400, 404, 409), idempotence
in moderation_reviews FINAL, and the review_precision_recall query over what was stored."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import orjson
import pytest
import urllib3

from streams.enrich.flags import CATEGORIES, load_moderation_config
from tests.integration.harness import Pipeline, free_port
from tests.integration.test_pipeline import feed_seed, seed_thread_id

pytestmark = [pytest.mark.kafka, pytest.mark.clickhouse]

TOKEN = "review-token-0123456789"


@pytest.fixture(scope="module")
def fed(broker: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pipeline]:
    p = Pipeline(tmp_path_factory.mktemp("reviews"), broker, STREAMS_API_TOKEN=TOKEN).start()
    feed_seed(p)
    p.wait_until("SELECT count() FROM comments FINAL", lambda n: int(n) >= 9)
    yield p
    p.stop()


def post(
    p: Pipeline, body: Any, *, token: str | None = TOKEN, content_type: str = "application/json"
) -> tuple[int, dict[str, Any]]:
    headers = {"Content-Type": content_type}
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    data = body if isinstance(body, bytes) else orjson.dumps(body)
    response = urllib3.request("POST", f"{p.settings.worker_url}/reviews", body=data, headers=headers, timeout=30)
    try:
        payload = orjson.loads(response.data)
    except orjson.JSONDecodeError:
        payload = {"raw": response.data.decode(errors="replace")}
    return response.status, payload


def flagged_and_clean(p: Pipeline) -> tuple[str, str, str]:
    """(a flagged comment, one of its categories, a comment not flagged in that category)."""
    rows = p.query(f"SELECT comment_id, flags FROM comments FINAL WHERE thread_id = '{seed_thread_id()}'")
    flagged = sorted((cid, sorted(flags)) for cid, flags in rows if flags)
    assert flagged, "the sample thread has no flagged comment"
    comment_id, flags = flagged[0]
    category = flags[0]
    clean = sorted(cid for cid, f in rows if category not in f)
    assert clean
    return comment_id, category, clean[0]


def cli_with(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run([sys.executable, "-m", "streams.cli", *args], capture_output=True, env=env, timeout=120)


def stored(p: Pipeline, comment_id: str) -> list[tuple[Any, ...]]:
    return p.query(
        "SELECT reviewer, category, toString(verdict), model_version FROM moderation_reviews FINAL "
        "WHERE comment_id = {c:String} ORDER BY reviewer, category",
        {"c": comment_id},
    )


def test_reviews_need_the_token_and_json(fed: Pipeline) -> None:
    body = {"comment_id": "x", "verdict": "confirm", "category": "spam"}
    status, payload = post(fed, body, token=None)
    assert status == 401 and "token" in payload["error"]
    assert post(fed, body, token="wrong")[0] == 401
    assert post(fed, body, content_type="text/plain")[0] == 415
    assert fed.scalar("SELECT count() FROM moderation_reviews") == 0


@pytest.mark.parametrize(
    ("body", "status", "reason"),
    [
        (b"notjson", 400, "not JSON"),
        (b"[1]", 400, "object"),
        ({"verdict": "confirm", "category": "spam"}, 400, '"comment_id" is required'),
        ({"comment_id": "x", "verdict": "approve", "category": "spam"}, 400, "unknown verdict 'approve'"),
        ({"comment_id": "x", "verdict": "confirm", "category": "rude"}, 400, "unknown category 'rude': one of"),
        ({"comment_id": "no-such-comment", "verdict": "confirm", "category": "spam"}, 404, "unknown comment_id"),
    ],
)
def test_bad_reviews_are_refused_with_a_reason(fed: Pipeline, body: Any, status: int, reason: str) -> None:
    got, payload = post(fed, body)
    assert (got, reason in payload.get("error", "")) == (status, True), payload
    assert "\n" not in payload["error"] and "Traceback" not in payload["error"]
    if "category" in reason:
        assert all(c in payload["error"] for c in CATEGORIES)


def test_a_verdict_against_the_flags_is_refused(fed: Pipeline) -> None:
    flagged, category, clean = flagged_and_clean(fed)
    status, payload = post(fed, {"comment_id": clean, "verdict": "confirm", "category": category})
    assert status == 409 and "missed" in payload["error"]
    status, payload = post(fed, {"comment_id": flagged, "verdict": "missed", "category": category})
    assert status == 409 and "confirm or reject" in payload["error"]


def test_reviews_land_once_and_a_changed_verdict_replaces_the_older(fed: Pipeline) -> None:
    flagged, category, _ = flagged_and_clean(fed)
    model_version = fed.query("SELECT model_version FROM comments FINAL WHERE comment_id = {c:String}", {"c": flagged})
    assert model_version[0][0] == load_moderation_config().model_version
    review = {"comment_id": flagged, "verdict": "reject", "category": category, "reviewer": "mod-1", "note": "hm"}
    status, payload = post(fed, review)
    assert status == 200, payload
    answer = payload["review"]
    assert answer["thread_id"] == seed_thread_id() and answer["model_version"] == model_version[0][0]
    assert (answer["verdict"], answer["reviewer"], answer["note"]) == ("reject", "mod-1", "hm")
    # mod-1 changes their mind, then posts the same review again: one row, the latest verdict.
    for _ in range(2):
        assert post(fed, {**review, "verdict": "confirm"})[0] == 200
    assert post(fed, {"comment_id": flagged, "verdict": "reject", "category": category, "reviewer": "mod-2"})[0] == 200
    assert stored(fed, flagged) == [
        ("mod-1", category, "confirm", model_version[0][0]),
        ("mod-2", category, "reject", model_version[0][0]),
    ]
    assert fed.scalar("SELECT count() FROM moderation_reviews") >= 4  # the replaced rows wait for a merge


def test_streams_review_posts_to_the_worker(fed: Pipeline) -> None:
    _, category, clean = flagged_and_clean(fed)
    done = fed.cli(
        "review", clean, "--verdict", "missed", "--category", category, "--reviewer", "mod-3", "--format", "json"
    )
    assert done.returncode == 0, done.stderr.decode()
    answer = json.loads(done.stdout)
    assert (answer["comment_id"], answer["verdict"], answer["reviewer"]) == (clean, "missed", "mod-3")
    assert stored(fed, clean) == [("mod-3", category, "missed", answer["model_version"])]
    table = fed.cli("review", clean, "--verdict", "missed", "--category", category, "--reviewer", "mod-3")
    assert table.returncode == 0 and b"review_id" in table.stdout and b"missed" in table.stdout
    assert len(stored(fed, clean)) == 1
    # Refusals are one line on stderr, with the exit code 1.
    bad = fed.cli("review", clean, "--verdict", "maybe", "--category", category)
    assert bad.returncode == 1 and b"unknown verdict" in bad.stderr and b"Traceback" not in bad.stderr


def test_streams_review_without_token_or_worker(fed: Pipeline) -> None:
    no_token = {k: v for k, v in fed.env.items() if k != "STREAMS_API_TOKEN"}
    done = cli_with(no_token, "review", "x", "--verdict", "confirm", "--category", "spam")
    assert done.returncode == 1 and b"token" in done.stderr
    nobody = {**fed.env, "STREAMS_WEB_PORT": str(free_port())}
    done = cli_with(nobody, "review", "x", "--verdict", "confirm", "--category", "spam")
    assert done.returncode == 1 and b"no worker answers" in done.stderr and b"streams worker" in done.stderr


def test_precision_and_recall_of_the_stored_reviews(fed: Pipeline) -> None:
    # Runs after the tests above (file order): mod-1 confirm + mod-2 reject on the flagged comment,
    # mod-3 missed on the clean one, all in one category and one model version.
    _, category, _ = flagged_and_clean(fed)
    done = fed.cli("query", "review_precision_recall", "--param", f"category={category}", "--format", "json")
    assert done.returncode == 0, done.stderr.decode()
    [row] = json.loads(done.stdout)
    assert (row["category"], row["model_version"]) == (category, load_moderation_config().model_version)
    assert (row["confirmed"], row["rejected"], row["missed"]) == (1, 1, 1)
    assert (row["precision"], row["recall"]) == (0.5, 0.5)
    # The training export has the text of every reviewed comment.
    export = fed.cli("query", "reviewed_comments", "--format", "json")
    assert export.returncode == 0, export.stderr.decode()
    rows = json.loads(export.stdout)
    assert sorted(r["verdict"] for r in rows) == ["confirm", "missed", "reject"]
    assert all(isinstance(r["body"], str) for r in rows)
