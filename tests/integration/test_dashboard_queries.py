"""Every dashboard query runs: ClickHouse panels on seeded data, Prometheus panels against our metrics.

No Grafana here, so each ClickHouse panel's rawSql is expanded as Grafana + the plugin would
(streams.grafana_macros) and executed on the embedded engine, once with every variable on All and
once with concrete selections. A panel must return rows with exactly the columns it declares.
"""

from __future__ import annotations

import subprocess
import sys
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from clickhouse_connect.driver.client import Client
from clickhouse_connect.driver.query import QueryResult

from streams import dashboards as d
from streams.clickhouse.client import connect
from streams.clickhouse.migrations import migrate
from streams.grafana_macros import ALL, VariableValue, expand
from tests.integration.seed_data import SEED_RANGE, SeedSummary, seed_all, visible_comments

pytestmark = pytest.mark.clickhouse

ALL_SELECTED: dict[str, VariableValue] = {"thread": ALL, "category": ALL, "author": ALL}
SOME_SELECTED: dict[str, VariableValue] = {
    "thread": ["t-putin-call", "t-world-cup"],
    "category": ["toxicity", "spam"],
    "author": ["bob", "spammer99"],
}
PANELS = list(d.clickhouse_panels())


@dataclass(frozen=True)
class Seeded:
    client: Client
    summary: SeedSummary


@pytest.fixture(scope="module")
def seeded(chdb_root: Path) -> Iterator[Seeded]:
    # Seeded once for the module: a fresh database in the session's one embedded directory.
    dsn = f"chdb://{chdb_root}?database=t_dash_{uuid.uuid4().hex[:8]}"
    client = connect(dsn)
    migrate(client)
    summary = seed_all(client)
    yield Seeded(client, summary)
    client.close()


def run(
    client: Client, sql: str, variables: Mapping[str, VariableValue] = ALL_SELECTED, interval_s: int = 600
) -> QueryResult:
    expanded = expand(sql, time_from=SEED_RANGE[0], time_to=SEED_RANGE[1], interval_s=interval_s, variables=variables)
    return client.query(expanded)


def panel_rows(client: Client, key: str, variables: Mapping[str, VariableValue] = ALL_SELECTED) -> list[dict[str, Any]]:
    query = d.panel(key).clickhouse
    assert query is not None
    result = run(client, query.sql, variables)
    return [dict(zip(result.column_names, row, strict=True)) for row in result.result_rows]


@pytest.mark.parametrize("variables", [ALL_SELECTED, SOME_SELECTED], ids=["all", "selected"])
@pytest.mark.parametrize(("dashboard", "panel"), PANELS, ids=[f"{dash.uid}:{p.key}" for dash, p in PANELS])
def test_clickhouse_panel_returns_its_columns(
    seeded: Seeded, dashboard: d.Dashboard, panel: d.Panel, variables: dict[str, VariableValue]
) -> None:
    assert panel.clickhouse is not None
    result = run(seeded.client, panel.clickhouse.sql, variables)
    assert len(result.result_rows) >= 1, f"{panel.title}: no rows"
    assert tuple(result.column_names) == panel.clickhouse.columns


@pytest.mark.parametrize("interval_s", [1, 60, 3600, 86400])
def test_time_series_panels_work_at_any_interval(seeded: Seeded, interval_s: int) -> None:
    for _, panel in PANELS:
        if panel.clickhouse and panel.clickhouse.query_type == "timeseries":
            result = run(seeded.client, panel.clickhouse.sql, interval_s=interval_s)
            assert result.result_rows, panel.key


def test_clickhouse_variable_queries(seeded: Seeded) -> None:
    checked = 0
    for model in (d.render(dash) for dash in d.dashboards()):
        for variable in model["templating"]["list"]:
            query = variable.get("query")
            if isinstance(query, dict) and "rawSql" in query:
                result = run(seeded.client, query["rawSql"])
                assert len(result.column_names) == 1 and result.result_rows, variable["name"]
                checked += 1
    assert checked == 2  # thread and author


def test_variable_values_match_the_data(seeded: Seeded) -> None:
    threads = [r[0] for r in run(seeded.client, d.THREAD_VAR.model["query"]["rawSql"]).result_rows]
    authors = {r[0] for r in run(seeded.client, d.AUTHOR_VAR.model["query"]["rawSql"]).result_rows}
    assert threads[0] == "t-putin-call" and set(threads) == {c.thread_id for c in visible_comments()}
    assert authors == {c.author for c in visible_comments() if c.flags}


def test_stats_read_with_final(seeded: Seeded) -> None:
    # 33 comment rows were inserted: a replay, an edit and a deletion only FINAL resolves.
    assert seeded.summary.comment_rows > seeded.summary.comments
    assert panel_rows(seeded.client, "activity_comments") == [{"comments": seeded.summary.comments}]
    assert panel_rows(seeded.client, "flagged_comments") == [{"flagged": seeded.summary.flagged}]
    assert panel_rows(seeded.client, "alert_count") == [{"alerts": seeded.summary.alerts}]
    assert panel_rows(seeded.client, "activity_active_threads") == [{"active_threads": 4}]
    flagged_ids = {r["comment_id"] for r in panel_rows(seeded.client, "latest_flagged_comments")}
    assert flagged_ids == {c.comment_id for c in visible_comments() if c.flags}
    assert "c8" not in flagged_ids  # flagged only in its superseded version 1


def test_top_threads_by_velocity_counts_each_window_once(seeded: Seeded) -> None:
    rows = {r["thread_id"]: r for r in panel_rows(seeded.client, "top_threads_velocity")}
    putin = rows["t-putin-call"]
    # Hopping 10-minute windows, one a minute: those holding at least one comment of the thread.
    minutes = [int(c.minute) for c in visible_comments() if c.thread_id == "t-putin-call"]
    starts = [s for s in range(min(minutes) - 9, max(minutes) + 1) if any(s <= m < s + 10 for m in minutes)]
    # Ten of them were emitted twice (before and after the late c7): counted once each thanks to FINAL.
    assert putin["windows"] == len(starts)
    assert putin["peak_velocity"] == pytest.approx(max(sum(s <= m < s + 10 for m in minutes) for s in starts) / 10)
    assert putin["velocity"] == pytest.approx(sum(starts[-1] <= m for m in minutes) / 10)  # the latest window
    assert putin["title"].startswith("Trump Calls Putin")


def test_selections_filter_the_panels(seeded: Seeded) -> None:
    world_cup = {"thread": ["t-world-cup"], "category": ALL, "author": ALL}
    assert panel_rows(seeded.client, "activity_comments", world_cup) == [{"comments": 7}]
    spam = {"thread": ALL, "category": ["spam"], "author": ALL}
    assert panel_rows(seeded.client, "flags_by_category", spam) == [{"category": "spam", "flagged": 3}]
    assert {r["category"] for r in panel_rows(seeded.client, "flag_rate_by_category", spam)} == {"spam"}
    bob = {"thread": ALL, "category": ALL, "author": ["bob"]}
    assert {r["author"] for r in panel_rows(seeded.client, "latest_flagged_comments", bob)} == {"bob"}
    # A value with a quote is escaped, not spliced: no match, no SQL error.
    quote = {"thread": ALL, "category": ALL, "author": ["o'brien"]}
    assert panel_rows(seeded.client, "latest_flagged_comments", quote) == []


def test_flag_rate_is_a_share_of_all_comments(seeded: Seeded) -> None:
    rows = panel_rows(seeded.client, "flag_rate_by_category")
    comments = visible_comments()
    first_bucket = [c for c in comments if c.minute < 10]  # 600 s buckets from 09:00
    toxic = sum(1 for c in first_bucket if "toxicity" in c.flags)
    rate = next(r["flag_rate"] for r in rows if r["category"] == "toxicity" and r["time"].minute == 0)
    assert rate == pytest.approx(toxic / len(first_bucket))


def test_review_panel_runs_the_named_query(seeded: Seeded) -> None:
    from streams.queries import load_query

    sql, params = load_query("review_precision_recall").bind({})
    named = seeded.client.query(sql, parameters=params).result_rows
    panel = [tuple(r.values()) for r in panel_rows(seeded.client, "review_precision_recall")]
    assert panel == named and panel
    spam = {"thread": ALL, "category": ["spam"], "author": ALL}
    assert {r["category"] for r in panel_rows(seeded.client, "review_precision_recall", spam)} == {"spam"}


# ------------------------------------------------------------------------------------ Prometheus

_EXPOSITION = """
from prometheus_client import generate_latest
from streams.metrics import REGISTRY
# Labelled metrics only appear once a child exists: create one of each, then expose.
for collector in list(REGISTRY._collector_to_names):
    labels = getattr(collector, "_labelnames", ())
    if labels:
        collector.labels(*["x"] * len(labels))
print(generate_latest(REGISTRY).decode())
"""


@pytest.fixture(scope="module")
def exposed_names() -> set[str]:
    # A separate process, so touching the metrics does not change the REGISTRY other tests see.
    out = subprocess.run([sys.executable, "-c", _EXPOSITION], capture_output=True, text=True, check=True).stdout
    return {line.split("{")[0].split()[0] for line in out.splitlines() if line and not line.startswith("#")}


def _prometheus_exprs() -> list[tuple[str, str]]:
    exprs = []
    for dash in d.dashboards():
        for p in dash.panels:
            exprs += [(p.key, q.expr) for q in p.prometheus]
    exprs.append(("variable agent", d.AGENT_QUERY))
    return exprs


@pytest.mark.parametrize(("key", "expr"), _prometheus_exprs(), ids=[k for k, _ in _prometheus_exprs()])
def test_prometheus_metrics_exist(exposed_names: set[str], key: str, expr: str) -> None:
    names = d.metric_names(expr)
    assert names, f"{key}: no metric in {expr!r}"
    missing = names - exposed_names
    assert not missing, f"{key}: {sorted(missing)} not exposed by streams.metrics"


def test_exposition_parsing_sees_every_metric_kind(exposed_names: set[str]) -> None:
    # Counters get _total, histograms _bucket/_sum/_count, gauges their bare name.
    assert {"streams_events_in_total", "streams_processing_seconds_bucket", "streams_consumer_lag"} <= exposed_names
