"""One way to reach ClickHouse: clickhouse-connect, embedded (chdb://) or a server (http(s)://).

The same DDL and queries run both ways. An embedded directory can be opened by one process at a
time; a second open fails inside chdb with "Error initializing EmbeddedServer", which we turn into
an error that says what to do.
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import parse_qs, urlparse

import clickhouse_connect
from clickhouse_connect.driver.client import Client


class ClickHouseUnavailable(RuntimeError):
    """The database named by the DSN cannot be opened or reached."""


def is_embedded(dsn: str) -> bool:
    return dsn.startswith("chdb://")


def embedded_path(dsn: str) -> Path:
    """Directory of a chdb:// DSN (chdb:///abs/path or chdb://relative/path, optional ?database=)."""
    return Path(dsn[len("chdb://") :].split("?", 1)[0])


def embedded_database(dsn: str) -> str:
    """The database named by `?database=` on a chdb:// DSN ("default" when absent)."""
    query = parse_qs(urlparse(dsn).query)
    return query.get("database", ["default"])[0]


def connect(dsn: str) -> Client:
    """Open a clickhouse-connect client for `dsn`."""
    scheme = urlparse(dsn).scheme
    if scheme == "chdb":
        # chdb runs one embedded server per process, bound to the first directory it opened;
        # clients on that same directory share it, and `?database=` keeps their tables apart.
        path = embedded_path(dsn)
        database = embedded_database(dsn)
        path.mkdir(parents=True, exist_ok=True)
        try:
            client = clickhouse_connect.get_client(dsn=f"chdb://{path}")
            if database != "default":
                client.command(f"CREATE DATABASE IF NOT EXISTS `{database}`")
                client = clickhouse_connect.get_client(dsn=f"chdb://{path}", database=database)
            return client
        except Exception as exc:
            if "EmbeddedServer" in str(exc) or "already initialized with path" in str(exc):
                raise ClickHouseUnavailable(
                    f"the embedded ClickHouse at {path} is open in another process (a running "
                    "`streams worker`?). Stop it, or ask the worker: `streams sql` does so by itself."
                ) from exc
            raise ClickHouseUnavailable(f"cannot open embedded ClickHouse at {path}: {exc}") from exc
    if scheme in ("http", "https"):
        try:
            return clickhouse_connect.get_client(dsn=dsn)
        except Exception as exc:
            raise ClickHouseUnavailable(f"cannot reach ClickHouse at {_redact(dsn)}: {exc}") from exc
    raise ClickHouseUnavailable(f"unsupported ClickHouse DSN {_redact(dsn)!r}: use chdb:///path or http(s)://")


def _redact(dsn: str) -> str:
    parsed = urlparse(dsn)
    if parsed.password:
        return dsn.replace(f":{parsed.password}@", ":***@")
    return dsn
