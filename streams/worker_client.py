"""Ask a running worker for query results over HTTP (the worker owns the embedded database).

`WorkerClient.query()` answers with the two attributes callers of clickhouse-connect use
(`column_names`, `result_rows`), so code written for a ClickHouse client also works through a worker.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

import orjson
import urllib3

from streams.settings import Settings


class WorkerUnavailable(RuntimeError):
    pass


@dataclass(frozen=True)
class QueryResult:
    column_names: tuple[str, ...]
    result_rows: list[tuple[Any, ...]]


def _identity(value: Any) -> Any:
    return value


def _converter(type_name: str) -> Callable[[Any], Any]:
    bare = type_name.removeprefix("Nullable(").removeprefix("LowCardinality(")
    if bare.startswith("DateTime"):
        return lambda v: None if v is None else _as_clickhouse_connect_does(datetime.fromisoformat(v))
    if bare.startswith("Date"):
        return lambda v: None if v is None else date.fromisoformat(v)
    return _identity


def _as_clickhouse_connect_does(value: datetime) -> datetime:
    """UTC as a naive datetime (clickhouse-connect's default), other offsets kept."""
    if value.tzinfo is not None and value.utcoffset() == timedelta(0):
        return value.replace(tzinfo=None)
    return value


class WorkerClient:
    def __init__(self, settings: Settings, *, timeout: float = 60.0) -> None:
        self.base = settings.worker_url
        token = settings.resolved_api_token()
        self.headers = {"Content-Type": "application/json"}
        if token:
            self.headers["Authorization"] = f"Bearer {token}"
        self.http = urllib3.PoolManager(timeout=urllib3.Timeout(connect=1.0, read=timeout), retries=False)

    def alive(self) -> bool:
        return self.health() is not None

    def health(self) -> dict[str, Any] | None:
        """The worker's /health answer, None when no worker answers."""
        try:
            response = self.http.request("GET", f"{self.base}/health", timeout=1.0)
        except urllib3.exceptions.HTTPError:
            return None
        # 503 is a worker that answers but is degraded (/health says why): still the one to ask.
        if response.status not in (200, 503):
            return None
        try:
            payload = orjson.loads(response.data)
        except orjson.JSONDecodeError:
            return {}
        return payload if isinstance(payload, dict) else {}

    def database_mismatch(self, dsn: str, health: dict[str, Any]) -> str | None:
        """Why this worker must not answer for `dsn` (it serves another database), or None."""
        from streams.clickhouse.identity import database_id, database_name

        served = health.get("database")
        if served == database_id(dsn):
            return None
        what = f"database {served}" if served else "a database it does not name (an older worker?)"
        return (
            f"the worker at {self.base} serves {what}, not STREAMS_CLICKHOUSE_DSN {database_name(dsn)} "
            f"(database {database_id(dsn)}); use that worker's STREAMS_CLICKHOUSE_DSN, point STREAMS_WEB_PORT "
            "at the worker of this database, or stop the other worker"
        )

    def _post(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        """POST JSON to the worker; its JSON answer, or RuntimeError with the worker's one-line reason."""
        try:
            response = self.http.request("POST", f"{self.base}{path}", body=orjson.dumps(body), headers=self.headers)
        except urllib3.exceptions.HTTPError as exc:
            raise WorkerUnavailable(f"no worker answers at {self.base}: {exc}") from exc
        try:
            payload = orjson.loads(response.data)
        except orjson.JSONDecodeError:
            payload = {}
        if not isinstance(payload, dict):
            payload = {}
        if response.status != 200:
            raise RuntimeError(payload.get("error") or f"worker answered HTTP {response.status}")
        return payload

    def query(self, sql: str, parameters: dict[str, Any] | None = None) -> QueryResult:
        payload = self._post("/sql", {"sql": sql, "parameters": parameters or {}})
        # JSON has no dates: turn the worker's ISO strings back into what clickhouse-connect gives.
        converters = [_converter(t) for t in payload.get("types") or [""] * len(payload["columns"])]
        rows = [tuple(conv(v) for conv, v in zip(converters, row, strict=True)) for row in payload["rows"]]
        return QueryResult(tuple(payload["columns"]), rows)

    def review(self, review: dict[str, Any]) -> dict[str, Any]:
        """POST /reviews: store a moderator's verdict; the stored row, or RuntimeError with the reason."""
        payload = self._post("/reviews", review)
        stored = payload.get("review")
        if not isinstance(stored, dict):
            raise RuntimeError("the worker's answer holds no review")
        return stored

    def command(self, sql: str) -> Any:
        rows = self.query(sql).result_rows
        return rows[0][0] if rows and len(rows[0]) == 1 else rows
