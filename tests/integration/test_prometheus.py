"""A real Prometheus server scrapes a running worker and finds the pipeline's series."""

from __future__ import annotations

import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest
import urllib3

from streams.cli import SAMPLES_DIR
from streams.sources.registry import parse_source
from tests.integration.harness import Pipeline, free_port

pytestmark = [pytest.mark.kafka, pytest.mark.clickhouse, pytest.mark.prometheus]

http = urllib3.PoolManager(timeout=5.0)


@pytest.fixture
def prometheus(pipeline: Pipeline, tmp_path: Path) -> Iterator[str]:
    binary = shutil.which("prometheus")
    if binary is None:
        pytest.fail("the prometheus binary is missing: `make system-deps` installs Debian's package")
    port = free_port()
    config = tmp_path / "prometheus.yml"
    config.write_text(
        "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n"
        "scrape_configs:\n  - job_name: comment-streams\n"
        f"    static_configs:\n      - targets: ['127.0.0.1:{pipeline.settings.web_port}']\n"
    )
    log = (tmp_path / "prometheus.log").open("wb")
    proc = subprocess.Popen(
        [
            binary,
            f"--config.file={config}",
            f"--storage.tsdb.path={tmp_path / 'tsdb'}",
            f"--web.listen-address=127.0.0.1:{port}",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                if http.request("GET", f"{base}/-/ready").status == 200:
                    break
            except urllib3.exceptions.HTTPError:
                pass
            time.sleep(0.3)
        else:
            pytest.fail(f"prometheus did not start: {(tmp_path / 'prometheus.log').read_text()[-2000:]}")
        yield base
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def instant(base: str, query: str) -> list[dict[str, object]]:
    response = http.request("GET", f"{base}/api/v1/query", fields={"query": query})
    payload = orjson.loads(response.data)
    assert payload["status"] == "success", payload
    result: list[dict[str, object]] = payload["data"]["result"]
    return result


def test_prometheus_scrapes_the_pipeline_series(pipeline: Pipeline, prometheus: str) -> None:
    pipeline.feed_items(parse_source(SAMPLES_DIR / "000_0506d22904cf1e0a.txt"))
    pipeline.feed_raw("prom-bad", [b"not json"])
    pipeline.wait_for_metric("streams_dead_letters_total", lambda n: n >= 1)
    wanted = {
        'sum(streams_events_in_total{agent="ingest"})': 10,
        'sum(streams_events_out_total{agent="ingest",topic="comments.valid"})': 9,
        'sum(streams_clickhouse_rows_total{table="comments"})': 9,
        "sum(streams_dead_letters_total)": 1,
        'sum(streams_batch_size_count{agent="sink_comments"})': 1,
        'sum(streams_clickhouse_insert_seconds_count{table="comments"})': 1,
        'sum(streams_processing_seconds_count{agent="enrich"})': 1,
        'count(up{job="comment-streams"} == 1)': 1,
    }
    deadline = time.monotonic() + 60
    missing: dict[str, object] = dict(wanted)
    while missing and time.monotonic() < deadline:
        for query, at_least in list(missing.items()):
            result = instant(prometheus, query)
            if result and float(result[0]["value"][1]) >= at_least:  # type: ignore[index]
                del missing[query]
        time.sleep(1)
    assert not missing, f"series not (yet) in Prometheus with the expected values: {missing}"
    # Lag is exported per topic and partition, never per author or thread (bounded labels).
    # (refreshed every 5 s, then scraped: it may come after the counters above)
    lag = instant(prometheus, "streams_consumer_lag")
    while not lag and time.monotonic() < deadline + 30:
        time.sleep(1)
        lag = instant(prometheus, "streams_consumer_lag")
    assert lag and all(set(s["metric"]) <= {"__name__", "instance", "job", "topic", "partition"} for s in lag)  # type: ignore[arg-type]
