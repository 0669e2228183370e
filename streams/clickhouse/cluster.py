"""The cluster form of the single-node migrations: Replicated local tables plus Distributed tables.

With STREAMS_CLICKHOUSE_CLUSTER=<name> the migrations runner sends, instead of each statement of
schemas/clickhouse/NNNN_*.sql, its cluster form made here (the .sql files stay the one source):

- ``CREATE TABLE t (...) ENGINE = XMergeTree(args) ...`` becomes
  ``CREATE TABLE t_local ON CLUSTER c (...) ENGINE = ReplicatedXMergeTree('<path>', '{replica}', args) ...``
  and ``CREATE TABLE t ON CLUSTER c AS t_local ENGINE = Distributed(c, currentDatabase(), t_local,
  cityHash64(<sorting key>))``: queries keep using ``t``. Rows are sharded by their whole sorting key,
  so every version of a row lands on one shard and ReplacingMergeTree/FINAL stay exact per shard.
- ``ALTER TABLE t`` column changes go to ``t_local`` and to ``t`` (added columns to the local tables
  first, dropped ones from the Distributed table first); other ALTERs (indexes, TTL, mutations)
  go to ``t_local`` only.
- ``DROP``/``TRUNCATE``/``OPTIMIZE TABLE`` and plain views get ON CLUSTER (views read ``t``).

Anything else (materialized views, RENAME, ...) raises ClusterDDLError: its cluster form needs a
decision, so `make cluster-ddl` and the tests stop until someone teaches this module that statement.

The cluster needs the macros {shard} and {replica} on every server and ClickHouse Keeper (or
ZooKeeper); see docs/operations.md. `python -m streams.clickhouse.cluster --write` (`make
cluster-ddl`) renders the golden files in deploy/clickhouse-cluster/ for review.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Iterable
from pathlib import Path

from streams import PROJECT_ROOT

LOCAL_SUFFIX = "_local"
#: Cluster name used for the golden files (deploy/clickhouse-cluster/).
GOLDEN_CLUSTER = "streams"
GOLDEN_DIR = PROJECT_ROOT / "deploy" / "clickhouse-cluster"

_IDENT = r"`?[A-Za-z_][A-Za-z0-9_]*`?"
_CREATE_TABLE = re.compile(
    rf"^CREATE\s+TABLE\s+(?P<ine>IF\s+NOT\s+EXISTS\s+)?(?P<name>{_IDENT})\s*(?P<body>\(.*)$", re.S | re.I
)
_ALTER_TABLE = re.compile(rf"^ALTER\s+TABLE\s+(?P<name>{_IDENT})\s+(?P<commands>.*)$", re.S | re.I)
_SIMPLE_TABLE_OP = re.compile(
    rf"^(?P<verb>DROP\s+TABLE|TRUNCATE\s+TABLE|OPTIMIZE\s+TABLE)\s+(?P<ie>IF\s+EXISTS\s+)?(?P<name>{_IDENT})(?P<rest>.*)$",
    re.S | re.I,
)
_CREATE_VIEW = re.compile(
    rf"^CREATE\s+(?P<replace>OR\s+REPLACE\s+)?VIEW\s+(?P<ine>IF\s+NOT\s+EXISTS\s+)?(?P<name>{_IDENT})\s+(?P<rest>AS\s.*)$",
    re.S | re.I,
)
_ENGINE = re.compile(r"\bENGINE\s*=\s*(?P<engine>[A-Za-z]+)\s*", re.I)
_CLAUSE = re.compile(r"\b(PARTITION\s+BY|ORDER\s+BY|PRIMARY\s+KEY|SAMPLE\s+BY|TTL|SETTINGS|COMMENT)\b", re.I)
_COLUMN_COMMAND = re.compile(r"^(ADD|DROP|MODIFY|RENAME|COMMENT|CLEAR)\s+COLUMN\b", re.I)


class ClusterDDLError(ValueError):
    """A migration statement has no generated cluster form."""


def _bare(name: str) -> str:
    return name.strip("`")


def _matching_paren(text: str, start: int) -> int:
    """Index of the ')' closing the '(' at `start` (quotes respected)."""
    depth = 0
    quote = ""
    i = start
    while i < len(text):
        ch = text[i]
        if quote:
            if ch == "\\":
                i += 1
            elif ch == quote:
                quote = ""
        elif ch in "'`\"":
            quote = ch
        elif ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
            if depth == 0:
                return i
        i += 1
    raise ClusterDDLError(f"unbalanced parentheses in: {text[:80]}...")


def _split_top_level(text: str) -> list[str]:
    """Split on commas outside parentheses and quotes."""
    parts: list[str] = []
    depth = 0
    quote = ""
    current: list[str] = []
    for ch in text:
        if quote:
            if ch == quote:
                quote = ""
        elif ch in "'`\"":
            quote = ch
        elif ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        elif ch == "," and depth == 0:
            parts.append("".join(current).strip())
            current = []
            continue
        current.append(ch)
    if "".join(current).strip():
        parts.append("".join(current).strip())
    return parts


def _quote(value: str) -> str:
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _sorting_key(tail: str) -> list[str]:
    """The ORDER BY expressions of a table's storage clauses (after the engine)."""
    match = re.search(r"\bORDER\s+BY\s+", tail, re.I)
    if not match:
        raise ClusterDDLError("a MergeTree table without ORDER BY cannot be sharded")
    rest = tail[match.end() :]
    if rest.startswith("("):
        end = _matching_paren(rest, 0)
        inner = rest[1:end]
        keys = _split_top_level(inner)
    else:
        following = _CLAUSE.search(rest)
        keys = [rest[: following.start() if following else len(rest)].strip()]
    return [k for k in keys if k and k.lower() != "tuple()"]


def _create_table(statement: str, cluster: str) -> list[str]:
    match = _CREATE_TABLE.match(statement)
    assert match is not None
    name = _bare(match["name"])
    body = match["body"]
    columns_end = _matching_paren(body, 0)
    columns = body[: columns_end + 1]
    storage = body[columns_end + 1 :].strip()
    engine_match = _ENGINE.match(storage)
    if not engine_match:
        raise ClusterDDLError(f"CREATE TABLE {name}: expected ENGINE = ... after the columns")
    engine = engine_match["engine"]
    if not engine.endswith("MergeTree") or engine.startswith("Replicated"):
        raise ClusterDDLError(f"CREATE TABLE {name}: engine {engine} has no generated cluster form")
    after_engine = storage[engine_match.end() :]
    args: list[str] = []
    if after_engine.startswith("("):
        end = _matching_paren(after_engine, 0)
        args = _split_top_level(after_engine[1:end])
        after_engine = after_engine[end + 1 :]
    tail = after_engine.strip()
    local = f"{name}{LOCAL_SUFFIX}"
    # {shard} keeps the shards' replica sets apart in Keeper; {database} lets several databases
    # (pipelines) share one cluster.
    replicated_args = [_quote(f"/clickhouse/tables/{{shard}}/{{database}}/{local}"), _quote("{replica}"), *args]
    keys = _sorting_key(tail)
    sharding = f"cityHash64({', '.join(keys)})" if keys else "rand()"
    ine = "IF NOT EXISTS " if match["ine"] else ""
    on_cluster = f"ON CLUSTER {_quote(cluster)}"
    return [
        f"CREATE TABLE {ine}{local} {on_cluster}\n{columns}\n"
        f"ENGINE = Replicated{engine}({', '.join(replicated_args)})\n{tail}",
        f"CREATE TABLE {ine}{name} {on_cluster}\nAS {local}\n"
        f"ENGINE = Distributed({_quote(cluster)}, currentDatabase(), {_quote(local)}, {sharding})",
    ]


def _alter_table(statement: str, cluster: str) -> list[str]:
    match = _ALTER_TABLE.match(statement)
    assert match is not None
    name = _bare(match["name"])
    commands = match["commands"]
    if re.match(r"^ON\s+CLUSTER\b", commands, re.I):
        raise ClusterDDLError(f"ALTER TABLE {name}: single-node migrations must not say ON CLUSTER")
    kinds = [bool(_COLUMN_COMMAND.match(c)) for c in _split_top_level(commands)]
    on_cluster = f"ON CLUSTER {_quote(cluster)}"
    local = f"ALTER TABLE {name}{LOCAL_SUFFIX} {on_cluster}\n    {commands}"
    if not any(kinds):
        return [local]  # indexes, TTL, settings, mutations: the data lives in the local tables
    if not all(kinds):
        raise ClusterDDLError(f"ALTER TABLE {name}: split column changes and other changes into separate statements")
    distributed = f"ALTER TABLE {name} {on_cluster}\n    {commands}"
    if re.search(r"^\s*DROP\s+COLUMN\b", commands, re.I | re.M) or re.search(r",\s*DROP\s+COLUMN\b", commands, re.I):
        return [distributed, local]
    return [local, distributed]


def _simple_table_op(statement: str, cluster: str) -> list[str]:
    match = _SIMPLE_TABLE_OP.match(statement)
    assert match is not None
    verb = " ".join(match["verb"].upper().split())
    name = _bare(match["name"])
    ie = "IF EXISTS " if match["ie"] else ""
    on_cluster = f"ON CLUSTER {_quote(cluster)}"
    rest = match["rest"]
    local = f"{verb} {ie}{name}{LOCAL_SUFFIX} {on_cluster}{rest}"
    if verb == "DROP TABLE":
        return [f"DROP TABLE {ie}{name} {on_cluster}{rest}", local]
    return [local]


def cluster_statements(statement: str, cluster: str) -> list[str]:
    """The statements that replace one single-node migration statement on cluster `cluster`."""
    text = statement.strip().rstrip(";").strip()
    if not cluster:
        return [text]
    if _CREATE_TABLE.match(text):
        return _create_table(text, cluster)
    if _ALTER_TABLE.match(text):
        return _alter_table(text, cluster)
    if _SIMPLE_TABLE_OP.match(text):
        return _simple_table_op(text, cluster)
    view = _CREATE_VIEW.match(text)
    if view:
        replace = "OR REPLACE " if view["replace"] else ""
        ine = "IF NOT EXISTS " if view["ine"] else ""
        return [f"CREATE {replace}VIEW {ine}{_bare(view['name'])} ON CLUSTER {_quote(cluster)} {view['rest']}"]
    if re.match(r"^INSERT\s+INTO\b", text, re.I):
        return [text]  # data migrations go through the Distributed table like any insert
    first_line = text.splitlines()[0][:80]
    raise ClusterDDLError(
        f"no cluster form for {first_line!r}: extend streams/clickhouse/cluster.py, then `make cluster-ddl`"
    )


def migrations_table_ddl(cluster: str) -> str:
    """The bookkeeping table; on a cluster one replica set across all shards, so any node knows."""
    columns = "(version UInt32, name String, checksum String, applied_at DateTime64(3, 'UTC') DEFAULT now64(3))"
    if not cluster:
        return f"CREATE TABLE IF NOT EXISTS schema_migrations {columns} ENGINE = ReplacingMergeTree ORDER BY version"
    path = _quote("/clickhouse/tables/all/{database}/schema_migrations")
    return (
        f"CREATE TABLE IF NOT EXISTS schema_migrations ON CLUSTER {_quote(cluster)} {columns} "
        f"ENGINE = ReplicatedReplacingMergeTree({path}, '{{shard}}-{{replica}}') ORDER BY version"
    )


def render(statements: Iterable[str], cluster: str) -> str:
    """The cluster form of a migration's statements as one .sql text."""
    out: list[str] = []
    for statement in statements:
        out.extend(cluster_statements(statement, cluster))
    return "".join(f"{s};\n\n" for s in out).rstrip("\n") + "\n"


def golden_texts(cluster: str = GOLDEN_CLUSTER) -> dict[str, str]:
    """File name -> rendered cluster DDL, for every migration plus the bookkeeping table."""
    from streams.clickhouse.migrations import discover

    texts = {"0000_schema_migrations.sql": migrations_table_ddl(cluster) + ";\n"}
    for migration in discover():
        header = (
            f"-- Generated from schemas/clickhouse/{migration.path.name} for ON CLUSTER {cluster}\n"
            "-- by `make cluster-ddl` (python -m streams.clickhouse.cluster --write): do not edit.\n\n"
        )
        texts[migration.path.name] = header + render(migration.statements(), cluster)
    return texts


def write_golden(directory: Path = GOLDEN_DIR) -> list[Path]:
    directory.mkdir(parents=True, exist_ok=True)
    texts = golden_texts()
    for stale in directory.glob("*.sql"):
        if stale.name not in texts:
            stale.unlink()
    written = []
    for name, text in texts.items():
        path = directory / name
        path.write_text(text, encoding="utf-8")
        written.append(path)
    return written


def main(argv: list[str]) -> int:
    if argv[1:] == ["--write"]:
        for path in write_golden():
            print(f"wrote {path.relative_to(PROJECT_ROOT)}")
        return 0
    cluster = argv[1] if len(argv) > 1 else GOLDEN_CLUSTER
    for name, text in golden_texts(cluster).items():
        sys.stdout.write(f"-- {name}\n{text}\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv))
