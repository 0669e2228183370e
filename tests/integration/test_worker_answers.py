"""What a running worker tells its clients: lag of the partitions agents consume (not changelogs),
which database it serves, UTC offsets in /sql's JSON; and `streams sql` through it (headers of empty
results, refusal when the worker serves another database)."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import orjson
import pytest
from prometheus_client.parser import text_string_to_metric_families

from streams.clickhouse.identity import database_id
from tests.integration.harness import Pipeline
from tests.integration.test_pipeline import feed_seed

pytestmark = [pytest.mark.kafka, pytest.mark.clickhouse]


@pytest.fixture(scope="module")
def fed(pipeline: Pipeline) -> Pipeline:
    feed_seed(pipeline)
    pipeline.wait_until("SELECT count() FROM comments FINAL", lambda n: int(n) >= 9)
    return pipeline


def lag_samples(p: Pipeline) -> dict[tuple[str, str], float]:
    text = p.client.http.request("GET", f"{p.settings.worker_url}/metrics").data.decode()
    return {
        (s.labels["topic"], s.labels["partition"]): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if s.name == "streams_consumer_lag"
    }


def test_an_idle_caught_up_worker_shows_no_lag_and_no_changelog_partitions(fed: Pipeline) -> None:
    prefix = fed.settings.topic_prefix
    deadline = time.monotonic() + 90
    samples: dict[tuple[str, str], float] = {}
    while time.monotonic() < deadline:
        samples = lag_samples(fed)
        consumed = {topic for topic, _ in samples}
        if f"{prefix}comments.raw" in consumed and not any(samples.values()):
            break
        time.sleep(1)
    assert samples, "no streams_consumer_lag samples"
    assert not [key for key in samples if key[0].endswith("-changelog")], samples
    assert sum(samples.values()) == 0, samples
    assert {f"{prefix}comments.raw", f"{prefix}comments.valid"} <= {topic for topic, _ in samples}


def test_health_names_the_database_by_hash(fed: Pipeline) -> None:
    health = fed.client.health()
    assert health is not None and health["status"] == "ok"
    assert health["database"] == database_id(fed.settings.clickhouse_dsn)
    assert str(Path(fed.workdir)) not in json.dumps(health)


def test_sql_json_keeps_the_utc_offset(fed: Pipeline) -> None:
    sql = "SELECT posted_at, [posted_at] AS times FROM comments FINAL ORDER BY posted_at LIMIT 1"
    headers = {"Content-Type": "application/json"}
    token = fed.settings.resolved_api_token()
    if token:
        headers["Authorization"] = f"Bearer {token}"
    response = fed.client.http.request(
        "POST", f"{fed.settings.worker_url}/sql", body=orjson.dumps({"sql": sql}), headers=headers
    )
    row = orjson.loads(response.data)["rows"][0]
    assert row == ["2018-03-20T11:54:00+00:00", ["2018-03-20T11:54:00+00:00"]]

    done = fed.cli("sql", sql, "--format", "json")
    assert done.returncode == 0, done.stderr.decode()
    assert json.loads(done.stdout) == [
        {"posted_at": "2018-03-20T11:54:00+00:00", "times": ["2018-03-20T11:54:00+00:00"]}
    ]


def test_sql_prints_headers_of_empty_results(fed: Pipeline) -> None:
    sql = "SELECT author, count() AS comments FROM comments FINAL WHERE author = 'nobody' GROUP BY author"
    csv_out = fed.cli("sql", sql, "--format", "csv")
    assert csv_out.returncode == 0, csv_out.stderr.decode()
    assert csv_out.stdout.decode().splitlines() == ["author,comments"]
    json_out = fed.cli("sql", sql, "--format", "json")
    assert json.loads(json_out.stdout) == []
    table_out = fed.cli("sql", sql).stdout.decode()
    assert "author" in table_out and "comments" in table_out and "0 rows" in table_out
    named = fed.cli("query", "author_profile", "-p", "author=nobody", "--format", "csv")
    assert named.returncode == 0, named.stderr.decode()
    assert len(named.stdout.decode().splitlines()) == 1 and "," in named.stdout.decode()


def test_sql_with_another_database_refuses_the_worker(fed: Pipeline, tmp_path: Path) -> None:
    other = {**fed.env, "STREAMS_CLICKHOUSE_DSN": f"chdb://{tmp_path / 'other'}"}
    done = subprocess.run(
        [sys.executable, "-m", "streams.cli", "sql", "SELECT count() FROM comments"],
        capture_output=True,
        env=other,
        timeout=120,
    )
    assert done.returncode == 1
    message = done.stderr.decode()
    assert (
        f"the worker at {fed.settings.worker_url} serves database {database_id(fed.settings.clickhouse_dsn)}" in message
    )
    assert str(tmp_path / "other") in message
    assert not done.stdout
