"""The ClickHouse cluster form of the migrations: golden files, the engine's parser, dedup tokens.

A ClickHouse cluster (Keeper, several servers) cannot run here, so the generated DDL is checked by
the embedded engine's own parser (formatQuery), not executed; docs/operations.md says how to
apply it. Refresh the golden files after adding a migration with `make cluster-ddl`.
"""

from __future__ import annotations

import re

import pytest
from clickhouse_connect.driver.client import Client

from streams.clickhouse.cluster import (
    GOLDEN_CLUSTER,
    GOLDEN_DIR,
    ClusterDDLError,
    cluster_statements,
    golden_texts,
    migrations_table_ddl,
)
from streams.clickhouse.migrations import discover
from streams.clickhouse.writer import ClickHouseWriter, dedup_token
from streams.settings import SettingsError, load_settings

REFRESH = "run `make cluster-ddl` (python -m streams.clickhouse.cluster --write) and review the diff"


def generated_statements() -> list[str]:
    statements = [migrations_table_ddl(GOLDEN_CLUSTER)]
    for migration in discover():
        for statement in migration.statements():
            statements.extend(cluster_statements(statement, GOLDEN_CLUSTER))
    return statements


def test_golden_files_match_the_migrations() -> None:
    expected = golden_texts()
    on_disk = {p.name: p.read_text(encoding="utf-8") for p in GOLDEN_DIR.glob("*.sql")}
    assert sorted(on_disk) == sorted(expected), REFRESH
    for name, text in expected.items():
        assert on_disk[name] == text, f"{GOLDEN_DIR.name}/{name} is stale: {REFRESH}"


@pytest.mark.clickhouse
def test_every_generated_statement_parses_in_the_engine(ch: Client) -> None:
    statements = generated_statements()
    assert len(statements) > 10
    for statement in statements:
        # formatQuery() runs the server's parser and prints the statement back (EXPLAIN SYNTAX
        # takes no ALTER); a parse error raises.
        literal = "'" + statement.replace("\\", "\\\\").replace("'", "\\'") + "'"
        formatted = str(ch.query(f"SELECT formatQuery({literal})").result_rows[0][0])
        # The parser kept the cluster clause (a typo would have failed to parse or lost it).
        assert f"ON CLUSTER {GOLDEN_CLUSTER}" in formatted.replace("`", "").replace("'", ""), formatted


def test_every_table_becomes_replicated_local_plus_distributed_with_the_queried_name() -> None:
    created = {}
    for statement in generated_statements():
        match = re.match(r"CREATE TABLE IF NOT EXISTS (\w+) ON CLUSTER", statement)
        if match:
            created[match[1]] = statement
    single_node_tables = {
        m[1]
        for migration in discover()
        for s in migration.statements()
        if (m := re.match(r"CREATE TABLE IF NOT EXISTS (\w+)", s))
    }
    assert single_node_tables >= {
        "comments",
        "dead_letters",
        "activity_windows",
        "alerts",
        "late_events",
        "moderation_reviews",
    }
    for table in single_node_tables:
        assert "ENGINE = Distributed('streams', currentDatabase(), '" + table + "_local'" in created[table]
        local = created[f"{table}_local"]
        assert re.search(r"ENGINE = Replicated\w*MergeTree\('/clickhouse/tables/\{shard\}/\{database\}/", local)
        assert "'{replica}'" in local


def test_engine_arguments_and_sharding_key_follow_the_table() -> None:
    local, distributed = cluster_statements(
        "CREATE TABLE IF NOT EXISTS t (a String, v UInt64, d UInt8) ENGINE = ReplacingMergeTree(v, d) "
        "PARTITION BY toYYYYMM(now()) ORDER BY (a, toStartOfHour(now())) SETTINGS index_granularity = 1024",
        "c1",
    )
    engine = "ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/{database}/t_local', '{replica}', v, d)"
    assert f"ENGINE = {engine}" in local
    assert local.rstrip().endswith("SETTINGS index_granularity = 1024")
    assert distributed.endswith("cityHash64(a, toStartOfHour(now())))")
    _, bare_key = cluster_statements("CREATE TABLE x (a String) ENGINE = MergeTree ORDER BY a", "c1")
    assert bare_key.endswith("cityHash64(a))")


def test_alters_go_where_the_columns_are() -> None:
    add = cluster_statements("ALTER TABLE t ADD COLUMN IF NOT EXISTS x UInt8", "c1")
    assert [s.split("\n")[0] for s in add] == ["ALTER TABLE t_local ON CLUSTER 'c1'", "ALTER TABLE t ON CLUSTER 'c1'"]
    drop = cluster_statements("ALTER TABLE t DROP COLUMN x", "c1")
    assert [s.split("\n")[0] for s in drop] == ["ALTER TABLE t ON CLUSTER 'c1'", "ALTER TABLE t_local ON CLUSTER 'c1'"]
    (index,) = cluster_statements("ALTER TABLE t ADD INDEX i x TYPE minmax GRANULARITY 1", "c1")
    assert index.startswith("ALTER TABLE t_local ON CLUSTER")
    with pytest.raises(ClusterDDLError, match="split"):
        cluster_statements("ALTER TABLE t ADD COLUMN y UInt8, ADD INDEX i y TYPE minmax", "c1")


def test_statements_without_a_cluster_form_are_refused_not_passed_through() -> None:
    for statement in (
        "CREATE MATERIALIZED VIEW mv TO t AS SELECT 1",
        "RENAME TABLE a TO b",
        "CREATE TABLE IF NOT EXISTS m (a String) ENGINE = Memory",
    ):
        with pytest.raises(ClusterDDLError):
            cluster_statements(statement, "c1")
    assert cluster_statements("DROP TABLE IF EXISTS t", "c1") == [
        "DROP TABLE IF EXISTS t ON CLUSTER 'c1'",
        "DROP TABLE IF EXISTS t_local ON CLUSTER 'c1'",
    ]


def test_single_node_is_unchanged() -> None:
    for migration in discover():
        for statement in migration.statements():
            assert cluster_statements(statement, "") == [statement]
    assert "ON CLUSTER" not in migrations_table_ddl("")


def test_the_cluster_setting_needs_a_server() -> None:
    assert load_settings({"STREAMS_CLICKHOUSE_CLUSTER": "c1", "STREAMS_CLICKHOUSE_DSN": "http://h:8123/db"})
    with pytest.raises(SettingsError, match="CLUSTER"):
        load_settings({"STREAMS_CLICKHOUSE_CLUSTER": "c1", "STREAMS_CLICKHOUSE_DSN": "chdb:///tmp/x"})


@pytest.mark.clickhouse
def test_an_insert_resent_with_its_dedup_token_is_stored_once(ch: Client, ch_dsn: str) -> None:
    # Replicated tables deduplicate by token out of the box; a plain MergeTree does when given a
    # deduplication window, which lets the embedded engine prove the token reaches it.
    ch.command(
        "CREATE TABLE dedup_probe (k String, n UInt32) ENGINE = MergeTree ORDER BY k "
        "SETTINGS non_replicated_deduplication_window = 100"
    )
    writer = ClickHouseWriter(ch_dsn)
    token = dedup_token("comments.enriched", 3, 100, 199)
    assert token == "comments.enriched:3:100-199"
    rows = [["a", 1], ["b", 2]]
    writer.insert_sync("dedup_probe", rows, ["k", "n"], dedup_token=token)
    writer.insert_sync("dedup_probe", rows, ["k", "n"], dedup_token=token)  # a retry after a lost ack
    assert ch.query("SELECT count() FROM dedup_probe").result_rows[0][0] == 2
    # The next batch has other offsets, so another token: stored, although its rows look the same.
    writer.insert_sync("dedup_probe", rows, ["k", "n"], dedup_token=dedup_token("comments.enriched", 3, 200, 299))
    assert ch.query("SELECT count() FROM dedup_probe").result_rows[0][0] == 4
