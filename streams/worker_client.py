"""Ask a running worker for query results over HTTP (the worker owns the embedded database).

`WorkerClient.query()` answers with the two attributes callers of clickhouse-connect use
(`column_names`, `result_rows`), so code written for a ClickHouse client also works through a worker.
"""

from __future__ import annotations

from dataclasses import dataclass
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


class WorkerClient:
    def __init__(self, settings: Settings, *, timeout: float = 60.0) -> None:
        self.base = settings.worker_url
        self.http = urllib3.PoolManager(timeout=urllib3.Timeout(connect=1.0, read=timeout), retries=False)

    def alive(self) -> bool:
        try:
            response = self.http.request("GET", f"{self.base}/health", timeout=1.0)
        except urllib3.exceptions.HTTPError:
            return False
        return response.status == 200

    def query(self, sql: str, parameters: dict[str, Any] | None = None) -> QueryResult:
        try:
            response = self.http.request(
                "POST",
                f"{self.base}/sql",
                body=orjson.dumps({"sql": sql, "parameters": parameters or {}}),
                headers={"Content-Type": "application/json"},
            )
        except urllib3.exceptions.HTTPError as exc:
            raise WorkerUnavailable(f"no worker answers at {self.base}: {exc}") from exc
        payload = orjson.loads(response.data)
        if response.status != 200:
            raise RuntimeError(payload.get("error", f"worker answered HTTP {response.status}"))
        return QueryResult(tuple(payload["columns"]), [tuple(r) for r in payload["rows"]])

    def command(self, sql: str) -> Any:
        rows = self.query(sql).result_rows
        return rows[0][0] if rows and len(rows[0]) == 1 else rows
