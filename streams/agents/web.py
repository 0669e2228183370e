"""Worker HTTP endpoints: /metrics (Prometheus), /health, /sql (read-only queries on the worker's
ClickHouse, so `streams sql` works while the worker owns the embedded database), and the timers
that refresh the lag and table-size gauges. /sql and the table sizes exist only where the sinks run
(a processing-role process never opens ClickHouse)."""

from __future__ import annotations

import logging
import os
from datetime import date, datetime
from typing import Any

from faust import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from streams import metrics
from streams.agents.common import writer
from streams.app import app, settings
from streams.sqlguard import WriteRefused, check_read_only

log = logging.getLogger(__name__)

TABLES = ("comments", "dead_letters", "activity_windows", "alerts", "late_events")


@app.page("/metrics")
async def metrics_page(self: web.View, request: web.Request) -> web.Response:
    return self.bytes(generate_latest(metrics.REGISTRY), content_type=CONTENT_TYPE_LATEST.split(";")[0])


@app.page("/health")
async def health_page(self: web.View, request: web.Request) -> web.Response:
    assigned = sorted(f"{tp.topic}:{tp.partition}" for tp in app.consumer.assignment())
    return self.json({"status": "ok", "role": settings.worker_role, "pid": os.getpid(), "assigned": assigned})


class SqlView(web.View):
    async def post(self, request: web.Request) -> web.Response:
        body: dict[str, Any] = await request.json()
        sql = str(body.get("sql", ""))
        try:
            checked = check_read_only(sql)
        except WriteRefused as exc:
            return self.json({"error": str(exc)}, status=400)
        try:
            columns, types, rows = await writer.query(checked, body.get("parameters") or {})
        except Exception as exc:
            return self.json({"error": str(exc)}, status=400)
        return self.json({"columns": columns, "types": types, "rows": [[_plain(v) for v in row] for row in rows]})


def _plain(value: Any) -> Any:
    if isinstance(value, int | float | str | bool) or value is None:
        return value
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    return str(value)


@app.timer(interval=5.0)
async def refresh_lag() -> None:
    consumer = app.consumer
    for tp in consumer.assignment():
        try:
            highwater = consumer.highwater(tp)
            # Faust keeps the offset of the last committed message (Kafka's committed offset is +1).
            committed = getattr(consumer, "_committed_offset", {}).get(tp)
        except Exception as exc:  # lag is advisory: never let it disturb the worker
            log.debug("lag of %s unavailable: %s", tp, exc)
            continue
        if highwater is not None:
            done = committed + 1 if committed is not None else 0
            metrics.CONSUMER_LAG.labels(tp.topic, str(tp.partition)).set(max(0, highwater - done))


async def refresh_table_sizes() -> None:
    try:
        sizes = await writer.table_rows(TABLES)
    except Exception as exc:
        log.debug("table sizes unavailable: %s", exc)
        return
    for name in TABLES:
        metrics.TABLE_ROWS.labels(name).set(sizes.get(name, 0))


if settings.runs_sink:
    app.page("/sql")(SqlView)
    app.timer(interval=15.0)(refresh_table_sizes)
