"""Worker HTTP endpoints: /metrics (Prometheus), /health, /sql (read-only queries on the worker's
ClickHouse, so `streams sql` works while the worker owns the embedded database), /reviews
(moderators' verdicts on flags, `streams review`), and the timers that refresh the lag and
table-size gauges. /sql, /reviews and the table sizes exist only where the sinks run (a
processing-role process never opens ClickHouse).

/sql and /reviews need `Authorization: Bearer <STREAMS_API_TOKEN>` whenever a token is set (the
worker refuses to bind beyond loopback without one) and take `application/json` only (so a web page
cannot send them as a "simple" cross-site request). /sql runs on a read-only session of its own
(streams/clickhouse/readonly.py), never on the connection the sinks insert with; /reviews looks the
comment up on that read-only session and inserts its row with the sinks' writer (the one process
that owns the embedded database).
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from datetime import UTC, date, datetime
from typing import Any

import orjson
from faust import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from streams import metrics
from streams.agents.common import reader, writer
from streams.apitoken import bearer_matches
from streams.app import app, settings
from streams.clickhouse.identity import database_id
from streams.clickhouse.readonly import StatementRefused, first_line
from streams.reviews import (
    LOOKUP_SQL,
    REVIEW_COLUMNS,
    ReviewError,
    check_verdict,
    parse_review,
    review_record,
    review_row,
    reviewed_comment,
)

log = logging.getLogger(__name__)

TABLES = ("comments", "dead_letters", "activity_windows", "alerts", "late_events", "moderation_reviews")

#: The token is read once at start: rotating it means restarting the worker (docs/operations).
API_TOKEN = settings.resolved_api_token()


@app.page("/metrics")
async def metrics_page(self: web.View, request: web.Request) -> web.Response:
    return self.bytes(generate_latest(metrics.REGISTRY), content_type=CONTENT_TYPE_LATEST.split(";")[0])


#: Inserts failing for this long make /health answer 503 (a retry or two is normal, not sickness).
INSERTS_FAILING_SECONDS = 30.0


def health_problems(now: float) -> list[str]:
    """What makes this worker unhealthy now (empty: healthy)."""
    problems = []
    if writer.failing_since is not None and now - writer.failing_since > INSERTS_FAILING_SECONDS:
        problems.append(f"ClickHouse inserts failing for {now - writer.failing_since:.0f}s ({writer.last_error})")
    problems.extend(metrics.crash_looping_agents(now))
    return problems


#: Which database this worker serves (a hash, no secrets): `streams sql` refuses to ask a worker of
#: another database than its own STREAMS_CLICKHOUSE_DSN.
DATABASE_ID = database_id(settings.clickhouse_dsn)


@app.page("/health")
async def health_page(self: web.View, request: web.Request) -> web.Response:
    assigned = sorted(f"{tp.topic}:{tp.partition}" for tp in app.consumer.assignment())
    problems = health_problems(time.monotonic())
    status = "degraded" if problems else "ok"
    return self.json(
        {
            "status": status,
            "problems": problems,
            "role": settings.worker_role,
            "pid": os.getpid(),
            "assigned": assigned,
            "database": DATABASE_ID,
        },
        status=503 if problems else 200,
    )


class BadRequest(ValueError):
    """A request the endpoint refuses: (HTTP status, one-line reason)."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status


def authorize(request: web.Request) -> None:
    """401 unless the request carries the API token (when one is set)."""
    if not bearer_matches(request.headers.get("Authorization"), API_TOKEN):
        raise BadRequest(401, "missing or wrong API token (send Authorization: Bearer <token>)")


def media_type(request: web.Request) -> str:
    return str(request.headers.get("Content-Type", "")).split(";", 1)[0].strip().lower()


def json_body(request_body: bytes, content_type: str) -> dict[str, Any]:
    """The body of a JSON API request as an object, or BadRequest with the reason."""
    if content_type != "application/json":
        raise BadRequest(415, f"send Content-Type: application/json (got {content_type or 'none'})")
    try:
        body = orjson.loads(request_body)
    except orjson.JSONDecodeError as exc:
        raise BadRequest(400, f"body is not JSON: {exc}") from exc
    if not isinstance(body, dict):
        raise BadRequest(400, f"body must be a JSON object, got {type(body).__name__}")
    return body


def sql_request(body: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """(sql, parameters) of a /sql request body: {"sql": "...", "parameters": {...}}."""
    sql = body.get("sql")
    if not isinstance(sql, str):
        raise BadRequest(400, '"sql" must be a string')
    parameters = body.get("parameters") or {}
    if not isinstance(parameters, dict):
        raise BadRequest(400, '"parameters" must be an object')
    return sql, parameters


def refusal(view: web.View, exc: BadRequest | ReviewError) -> web.Response:
    """The JSON error answer: {"error": "<one line>"}, with the Bearer challenge on a 401."""
    headers = {"WWW-Authenticate": "Bearer"} if exc.status == 401 else None
    return view.json({"error": str(exc)}, status=exc.status, headers=headers)


class SqlView(web.View):
    async def post(self, request: web.Request) -> web.Response:
        try:
            authorize(request)
            sql, parameters = sql_request(json_body(await request.read(), media_type(request)))
        except BadRequest as exc:
            return refusal(self, exc)
        try:
            result = await asyncio.to_thread(reader.query, sql, parameters)
        except StatementRefused as exc:
            return self.json({"error": str(exc)}, status=400)
        except Exception as exc:
            return self.json({"error": first_line(exc)}, status=400)
        return self.json(
            {
                "columns": list(result.column_names),
                "types": list(result.column_types),
                "rows": [[_plain(v) for v in row] for row in result.result_rows],
            }
        )


class ReviewView(web.View):
    """POST /reviews {comment_id, verdict, category, reviewer?, note?, thread_id?}: store a moderator's
    verdict (streams/reviews.py) and answer with the stored row."""

    async def post(self, request: web.Request) -> web.Response:
        try:
            authorize(request)
            review = parse_review(json_body(await request.read(), media_type(request)))
        except (BadRequest, ReviewError) as exc:
            return refusal(self, exc)
        try:
            found = await asyncio.to_thread(
                reader.query, LOOKUP_SQL, {"comment_id": review.comment_id, "thread_id": review.thread_id}
            )
        except Exception as exc:
            return self.json({"error": f"comment lookup failed: {first_line(exc)}"}, status=503)
        try:
            comment = reviewed_comment(review, found.result_rows)
            check_verdict(review, comment)
        except ReviewError as exc:
            return refusal(self, exc)
        row = review_row(review, comment)
        try:
            # One attempt (the moderator retries), on the sinks' connection and lock.
            await asyncio.to_thread(writer.insert_sync, "moderation_reviews", [row], REVIEW_COLUMNS)
        except Exception as exc:
            log.warning("review insert failed: %s", exc)
            return self.json({"error": f"storing the review failed: {first_line(exc)}"}, status=503)
        return self.json({"review": review_record(row)})


def _plain(value: Any) -> Any:
    if isinstance(value, int | float | str | bool) or value is None:
        return value
    if isinstance(value, datetime):
        # clickhouse-connect returns UTC columns (all of ours) as naive datetimes: say they are UTC.
        return (value if value.tzinfo is not None else value.replace(tzinfo=UTC)).isoformat()
    if isinstance(value, date):
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
    # Changelog partitions are read (to restore tables) but never committed: their "lag" would be
    # their whole length on an idle, caught-up worker. Only the topics agents consume count.
    changelogs = app.tables.changelog_topics
    for tp in consumer.assignment():
        if tp.topic in changelogs:
            continue
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
        sizes = await asyncio.to_thread(table_rows, TABLES)
    except Exception as exc:
        log.debug("table sizes unavailable: %s", exc)
        return
    for name in TABLES:
        metrics.TABLE_ROWS.labels(name).set(sizes.get(name, 0))


def table_rows(tables: tuple[str, ...]) -> dict[str, int]:
    """Row counts (active parts, before dedup merges) for the table-size gauges."""
    result = reader.query(
        "SELECT table, toUInt64(sum(rows)) FROM system.parts WHERE active AND database = currentDatabase() "
        "AND has({tables:Array(String)}, table) GROUP BY table",
        {"tables": list(tables)},
    )
    return {str(t): int(n) for t, n in result.result_rows}


if settings.runs_sink:
    app.page("/sql")(SqlView)
    app.page("/reviews")(ReviewView)
    app.timer(interval=15.0)(refresh_table_sizes)
