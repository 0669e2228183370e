"""Numbered, forward-only migrations from schemas/clickhouse/NNNN_name.sql, applied once each.

Applied versions are tracked in `schema_migrations`. Every statement is written to be re-runnable
(IF NOT EXISTS), so a run interrupted between a statement and its bookkeeping row is safe to repeat.
With a cluster name (STREAMS_CLICKHOUSE_CLUSTER) each statement is sent in its cluster form
(streams/clickhouse/cluster.py: Replicated local tables + Distributed tables, ON CLUSTER).
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path

from clickhouse_connect.driver.client import Client

from streams import PROJECT_ROOT
from streams.clickhouse.cluster import ClusterDDLError, cluster_statements, migrations_table_ddl

MIGRATIONS_DIR = PROJECT_ROOT / "schemas" / "clickhouse"
_NAME = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")


class MigrationError(RuntimeError):
    pass


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    path: Path

    @property
    def sql(self) -> str:
        return self.path.read_text(encoding="utf-8")

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.sql.encode()).hexdigest()[:16]

    def statements(self) -> list[str]:
        """Split on ';' at line ends; comments are dropped (the files hold no ';' inside strings)."""
        body = "\n".join(line for line in self.sql.splitlines() if not line.lstrip().startswith("--"))
        return [s.strip() for s in re.split(r";\s*(?:\n|$)", body) if s.strip()]


def discover(directory: Path = MIGRATIONS_DIR) -> list[Migration]:
    found: list[Migration] = []
    for path in sorted(directory.glob("*.sql")):
        match = _NAME.match(path.name)
        if not match:
            raise MigrationError(f"{path}: migration files are named NNNN_lower_snake.sql")
        found.append(Migration(int(match[1]), match[2], path))
    versions = [m.version for m in found]
    if len(set(versions)) != len(versions):
        raise MigrationError(f"duplicate migration numbers in {directory}: {versions}")
    return found


def applied_versions(client: Client, cluster: str = "") -> dict[int, str]:
    client.command(migrations_table_ddl(cluster))
    rows = client.query("SELECT version, checksum FROM schema_migrations FINAL").result_rows
    return {int(v): str(c) for v, c in rows}


def migrate(client: Client, directory: Path = MIGRATIONS_DIR, *, cluster: str = "") -> list[Migration]:
    """Apply the migrations not yet applied; return them. Refuses if an applied file was edited.

    `cluster`: a ClickHouse cluster name to apply the cluster form ON CLUSTER; '' for one node.
    """
    done = applied_versions(client, cluster)
    applied: list[Migration] = []
    for migration in discover(directory):
        if migration.version in done:
            if done[migration.version] != migration.checksum:
                raise MigrationError(
                    f"migration {migration.path.name} changed after it was applied; migrations are "
                    "forward-only: add a new numbered file instead"
                )
            continue
        try:
            statements = [s for statement in migration.statements() for s in cluster_statements(statement, cluster)]
        except ClusterDDLError as exc:
            raise MigrationError(f"{migration.path.name}: {exc}") from exc
        for statement in statements:
            try:
                client.command(statement)
            except Exception as exc:
                raise MigrationError(f"{migration.path.name}: {exc}") from exc
        client.insert(
            "schema_migrations",
            [[migration.version, migration.name, migration.checksum]],
            column_names=["version", "name", "checksum"],
        )
        applied.append(migration)
    return applied
