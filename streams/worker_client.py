"""Ask a running worker for query results over HTTP (the worker owns the embedded database).

`WorkerClient.query()` answers with the two attributes callers of clickhouse-connect use
(`column_names`, `result_rows`), so code written for a ClickHouse client also works through a worker.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime
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
        return lambda v: None if v is None else datetime.fromisoformat(v)
    if bare.startswith("Date"):
        return lambda v: None if v is None else date.fromisoformat(v)
    return _identity


class WorkerClient:
    def __init__(self, settings: Settings, *, timeout: float = 60.0) -> None:
        self.base = settings.worker_url
        token = settings.resolved_api_token()
        self.headers = {"Content-Type": "application/json"}
        if token:
            self.headers["Authorization"] = f"Bearer {token}"
        self.http = urllib3.PoolManager(timeout=urllib3.Timeout(connect=1.0, read=timeout), retries=False)

    def alive(self) -> bool:
        try:
            response = self.http.request("GET", f"{self.base}/health", timeout=1.0)
        except urllib3.exceptions.HTTPError:
            return False
        # 503 is a worker that answers but is degraded (/health says why): still the one to ask.
        return response.status in (200, 503)

    def query(self, sql: str, parameters: dict[str, Any] | None = None) -> QueryResult:
        try:
            response = self.http.request(
                "POST",
                f"{self.base}/sql",
                body=orjson.dumps({"sql": sql, "parameters": parameters or {}}),
                headers=self.headers,
            )
        except urllib3.exceptions.HTTPError as exc:
            raise WorkerUnavailable(f"no worker answers at {self.base}: {exc}") from exc
        try:
            payload = orjson.loads(response.data)
        except orjson.JSONDecodeError:
            payload = {}
        if response.status != 200:
            raise RuntimeError(payload.get("error") or f"worker answered HTTP {response.status}")
        # JSON has no dates: turn the worker's ISO strings back into what clickhouse-connect gives.
        converters = [_converter(t) for t in payload.get("types") or [""] * len(payload["columns"])]
        rows = [tuple(conv(v) for conv, v in zip(converters, row, strict=True)) for row in payload["rows"]]
        return QueryResult(tuple(payload["columns"]), rows)

    def command(self, sql: str) -> Any:
        rows = self.query(sql).result_rows
        return rows[0][0] if rows and len(rows[0]) == 1 else rows
