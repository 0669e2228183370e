"""The worker's one connection to ClickHouse, used from asyncio.

clickhouse-connect is blocking, so calls run in a worker thread; a lock serialises them because
the embedded engine and an HTTP session are both safest used by one caller at a time. Inserts retry
with capped exponential backoff until ClickHouse accepts them or the worker stops: the caller's
Kafka offsets stay uncommitted meanwhile (backpressure), so a ClickHouse outage loses nothing.

A caller that knows which input a batch came from passes `dedup_token` (see `dedup_token()`):
replicated tables (cluster mode) then drop a re-sent block instead of storing it twice.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Sequence
from typing import Any

from clickhouse_connect.driver.client import Client
from clickhouse_connect.driver.insert import InsertContext

from streams import metrics
from streams.clickhouse.client import connect

log = logging.getLogger(__name__)


def dedup_token(topic: str, partition: int, first_offset: int, last_offset: int) -> str:
    """The insert_deduplication_token of a batch made from offsets first..last of one partition."""
    return f"{topic}:{partition}:{first_offset}-{last_offset}"


def insert_settings(token: str | None) -> dict[str, Any]:
    """Per-insert settings: the deduplication token when there is one (ignored by plain MergeTree)."""
    return {"insert_deduplication_token": token} if token else {}


class ClickHouseWriter:
    def __init__(self, dsn: str, *, max_backoff_seconds: float = 30.0) -> None:
        self.dsn = dsn
        self.max_backoff_seconds = max_backoff_seconds
        self._client: Client | None = None
        #: One insert context per (table, columns): the column types are looked up once, not per insert.
        self._contexts: dict[tuple[str, tuple[str, ...]], InsertContext] = {}
        self._lock = threading.Lock()
        #: Monotonic time since which inserts have been failing (None: the last one succeeded).
        self.failing_since: float | None = None
        self.last_error: str = ""

    @property
    def client(self) -> Client:
        if self._client is None:
            self._client = connect(self.dsn)
            self._contexts.clear()
        return self._client

    def _insert_columns(
        self, table: str, rows: Sequence[Sequence[Any]], columns: Sequence[str], token: str | None
    ) -> None:
        """One column-oriented insert through the table's reused insert context."""
        if not rows:
            return
        key = (table, tuple(columns))
        context = self._contexts.get(key)
        if context is None:
            context = self.client.create_insert_context(table, list(columns), column_oriented=True)
            self._contexts[key] = context
        context.settings = insert_settings(token)
        context.data = [list(column) for column in zip(*rows, strict=True)]
        try:
            self.client.insert(context=context)
        except BaseException:
            self._contexts.pop(key, None)  # a context left mid-insert is not reused
            raise

    def _run(self, fn: Any, *args: Any, **kwargs: Any) -> Any:
        with self._lock:
            return fn(*args, **kwargs)

    def insert_sync(
        self, table: str, rows: Sequence[Sequence[Any]], columns: Sequence[str], *, dedup_token: str | None = None
    ) -> None:
        started = time.perf_counter()
        self._run(self._insert_columns, table, rows, columns, dedup_token)
        metrics.INSERT_SECONDS.labels(table).observe(time.perf_counter() - started)
        metrics.INSERT_ROWS.labels(table).inc(len(rows))

    async def insert(
        self, table: str, rows: Sequence[Sequence[Any]], columns: Sequence[str], *, dedup_token: str | None = None
    ) -> None:
        """Insert until it succeeds; raises only CancelledError (worker stopping).

        Every retry sends the same `dedup_token`, so a retry after a lost acknowledgement is dropped
        by replicated tables instead of stored twice."""
        if not rows:
            return
        delay = 0.2
        while True:
            try:
                await asyncio.to_thread(self.insert_sync, table, rows, columns, dedup_token=dedup_token)
                self.failing_since = None
                return
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                metrics.INSERT_ERRORS.labels(table).inc()
                if self.failing_since is None:
                    self.failing_since = time.monotonic()
                self.last_error = f"insert into {table}: {type(exc).__name__}"
                log.warning("insert of %d rows into %s failed (%s); retrying in %.1fs", len(rows), table, exc, delay)
                self._client = None  # a broken HTTP session is not reused
                await asyncio.sleep(delay)
                delay = min(delay * 2, self.max_backoff_seconds)
