"""The worker's one connection to ClickHouse, used from asyncio.

clickhouse-connect is blocking, so calls run in a worker thread; a lock serialises them because
the embedded engine and an HTTP session are both safest used by one caller at a time. Inserts retry
with capped exponential backoff until ClickHouse accepts them or the worker stops: the caller's
Kafka offsets stay uncommitted meanwhile (backpressure), so a ClickHouse outage loses nothing.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Sequence
from typing import Any

from clickhouse_connect.driver.client import Client

from streams import metrics
from streams.clickhouse.client import connect

log = logging.getLogger(__name__)


class ClickHouseWriter:
    def __init__(self, dsn: str, *, max_backoff_seconds: float = 30.0) -> None:
        self.dsn = dsn
        self.max_backoff_seconds = max_backoff_seconds
        self._client: Client | None = None
        self._lock = threading.Lock()
        #: Monotonic time since which inserts have been failing (None: the last one succeeded).
        self.failing_since: float | None = None
        self.last_error: str = ""

    @property
    def client(self) -> Client:
        if self._client is None:
            self._client = connect(self.dsn)
        return self._client

    def _run(self, fn: Any, *args: Any, **kwargs: Any) -> Any:
        with self._lock:
            return fn(*args, **kwargs)

    def insert_sync(self, table: str, rows: Sequence[Sequence[Any]], columns: Sequence[str]) -> None:
        started = time.perf_counter()
        self._run(lambda: self.client.insert(table, rows, column_names=list(columns)))
        metrics.INSERT_SECONDS.labels(table).observe(time.perf_counter() - started)
        metrics.INSERT_ROWS.labels(table).inc(len(rows))

    async def insert(self, table: str, rows: Sequence[Sequence[Any]], columns: Sequence[str]) -> None:
        """Insert until it succeeds; raises only CancelledError (worker stopping)."""
        if not rows:
            return
        delay = 0.2
        while True:
            try:
                await asyncio.to_thread(self.insert_sync, table, rows, columns)
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
