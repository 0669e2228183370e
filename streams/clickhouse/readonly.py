"""Ad-hoc SQL that cannot write: read-only enforced by ClickHouse itself, not by inspecting text.

Every ad-hoc query (`streams sql` without `--write`, the worker's `/sql`, `streams query`) runs on a
connection of its own, never the one the sinks insert with, whose session is put in ClickHouse's
`readonly = 1` mode after its limits are set. In that mode the engine refuses INSERT, DDL, SET,
`SETTINGS` clauses and every table function (`file`, `url`, `remote`, `mysql`, `executable`, ...),
and a query cannot lift its own limits. Before running, the engine's own parser
(`formatQuerySingleLine`) turns the text into exactly one canonical statement: multi-statement
input fails there, whatever comments or quotes hide its `;`, and the canonical text is what runs.
The one thing `readonly` lets through is `INTO OUTFILE` (a client-side clause that the embedded
engine executes), so canonical statements carrying it are refused.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from clickhouse_connect.driver.client import Client

from streams.clickhouse.client import connect, is_embedded
from streams.clickhouse.limits import QueryLimits

READ_ONLY_KEYWORDS = frozenset({"SELECT", "WITH", "SHOW", "DESCRIBE", "DESC", "EXPLAIN", "EXISTS"})

_CANONICAL_STRING = re.compile(r"'(?:[^'\\]|\\.)*'|`(?:[^`\\]|\\.)*`|\"(?:[^\"\\]|\\.)*\"", re.S)
_INTO_OUTFILE = re.compile(r"\bINTO\s+OUTFILE\b", re.I)
_ENGINE_PREFIX = re.compile(r"^(?:(?:Code: \d+\. )?DB::Exception: )+")


class StatementRefused(ValueError):
    """The SQL is not one read-only statement (the message says why, in one line)."""


def check_canonical(canonical: str) -> str:
    """Refuse a canonical (engine-formatted) statement that is not a read or writes a file."""
    bare = _CANONICAL_STRING.sub("''", canonical).strip()
    if not bare:
        raise StatementRefused("empty query")
    keyword = bare.split(None, 1)[0].upper()
    if keyword not in READ_ONLY_KEYWORDS:
        raise StatementRefused(f"{keyword} changes data or settings: only `streams sql --write` may run it")
    if _INTO_OUTFILE.search(bare):
        raise StatementRefused("INTO OUTFILE writes a file: only `streams sql --write` may run it")
    return canonical


def first_line(exc: BaseException) -> str:
    """An engine error as one line, without the server's stack trace."""
    text = str(exc).strip()
    line = text.splitlines()[0] if text else type(exc).__name__
    line = _ENGINE_PREFIX.sub("", line).split(": In scope ", 1)[0]
    return line.strip()


@dataclass(frozen=True)
class ReadResult:
    column_names: tuple[str, ...]
    column_types: tuple[str, ...]
    result_rows: list[tuple[Any, ...]]


class ReadOnlyClient:
    """A read-only ClickHouse session of its own (thread-safe; one query at a time on it)."""

    def __init__(self, dsn: str, limits: QueryLimits | None = None) -> None:
        self.dsn = dsn
        self.limits = limits or QueryLimits()
        self._client: Client | None = None
        self._lock = threading.Lock()

    def _open(self) -> Client:
        client = connect(self.dsn)
        settings = self.limits.settings()
        if is_embedded(self.dsn):
            # chdb applies per-call settings with SET and restores them afterwards, which a
            # read-only session would refuse: set them once on this session, `readonly` last.
            for name, value in settings.items():
                literal = f"'{value}'" if isinstance(value, str) else str(value)
                client.command(f"SET {name} = {literal}")
        else:
            # A server applies these to every request of this client (an operator may also give
            # the DSN a user whose profile is readonly, which is stronger still).
            for name, value in settings.items():
                client.set_client_setting(name, value)
        return client

    @property
    def client(self) -> Client:
        if self._client is None:
            self._client = self._open()
        return self._client

    def canonical(self, sql: str) -> str:
        """The engine's canonical text of `sql` if it is one read-only statement; else StatementRefused."""
        if not sql.strip():
            raise StatementRefused("empty query")
        with self._lock:
            try:
                result = self.client.query("SELECT formatQuerySingleLine({sql:String})", parameters={"sql": sql})
            except Exception as exc:
                raise StatementRefused(f"not one valid statement: {first_line(exc)}") from exc
        return check_canonical(str(result.result_rows[0][0]))

    def query(self, sql: str, parameters: Mapping[str, Any] | None = None) -> ReadResult:
        """Run one read-only statement (parameters only through the driver's binding)."""
        statement = self.canonical(sql)
        with self._lock:
            result = self.client.query(statement, parameters=dict(parameters or {}))
        return ReadResult(
            tuple(result.column_names),
            tuple(t.name for t in result.column_types),
            [tuple(r) for r in result.result_rows],
        )

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None
