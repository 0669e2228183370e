"""`streams ingest-api`: POST /v1/comments, for sites that send comments as they are written.

A separate aiohttp process (not the worker's web server), so it can be scaled and exposed apart
from the worker. Body: one event (JSON object), a JSON array of events, or JSON lines
(`application/x-ndjson`). Every event is validated as ingest validates it; valid ones are produced
to comments.raw (keyed by thread, acks from all in-sync replicas) and the answer (202) comes only
after the broker acknowledged them, with the count accepted and an error per refused line. See
schemas/openapi/ingest.yaml.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass, field
from typing import Any

import msgspec
import orjson
from aiohttp import web
from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError

from streams import topics
from streams.apitoken import bearer_matches
from streams.ingest import Rejection, validate
from streams.models import CommentEvent
from streams.settings import Settings

JSON = "application/json"
NDJSON = "application/x-ndjson"
DEFAULT_MAX_BODY = 1 << 20
RETRY_AFTER_SECONDS = 5


@dataclass
class Parsed:
    """What a request body holds: events to produce (key, value) and refused lines."""

    accepted: list[tuple[str, bytes]] = field(default_factory=list)
    errors: list[dict[str, Any]] = field(default_factory=list)


def _check(parsed: Parsed, index: int, raw: bytes) -> None:
    outcome = validate(raw)
    if isinstance(outcome, Rejection):
        parsed.errors.append({"line": index, "reason_code": outcome.reason_code, "reason": outcome.reason[:500]})
    else:
        assert isinstance(outcome, CommentEvent)
        parsed.accepted.append((outcome.thread_id, msgspec.json.encode(outcome)))


def parse_body(body: bytes, content_type: str) -> Parsed:
    """Pure: the events of a body. `line` is 1-based: the line (x-ndjson) or the array position."""
    parsed = Parsed()
    if content_type == NDJSON:
        for idx, line in enumerate(body.split(b"\n"), start=1):
            if line.strip():
                _check(parsed, idx, line.rstrip(b"\r"))
        return parsed
    try:
        value = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        parsed.errors.append({"line": 1, "reason_code": "not_json", "reason": f"not valid JSON: {exc}"})
        return parsed
    items = value if isinstance(value, list) else [value]
    for idx, item in enumerate(items, start=1):
        _check(parsed, idx, orjson.dumps(item))
    return parsed


class BrokerUnavailable(Exception):
    pass


class Producer:
    """One producer for the process, started on first use and restarted after a failure."""

    def __init__(self, settings: Settings, timeout_seconds: float = 5.0) -> None:
        self.settings = settings
        self.timeout = timeout_seconds
        self._producer: AIOKafkaProducer | None = None
        self._lock = asyncio.Lock()

    async def _get(self) -> AIOKafkaProducer:
        async with self._lock:
            if self._producer is None:
                producer = AIOKafkaProducer(
                    bootstrap_servers=self.settings.bootstrap_servers,
                    acks="all",
                    enable_idempotence=True,
                    linger_ms=2,
                    request_timeout_ms=int(self.timeout * 1000),
                )
                try:
                    await asyncio.wait_for(producer.start(), self.timeout)
                except (TimeoutError, KafkaError, OSError) as exc:
                    await _quiet_stop(producer)
                    raise BrokerUnavailable(str(exc) or type(exc).__name__) from exc
                self._producer = producer
            return self._producer

    async def send_all(self, records: list[tuple[str, bytes]]) -> None:
        """Produce and wait until the broker acknowledged every record (BrokerUnavailable if not)."""
        producer = await self._get()
        topic = self.settings.topic(topics.RAW)
        try:
            futures = [await producer.send(topic, value=v, key=k.encode()) for k, v in records]
            await asyncio.wait_for(asyncio.gather(*futures), self.timeout * 2)
        except (TimeoutError, KafkaError, OSError) as exc:
            self._producer = None
            await _quiet_stop(producer)
            raise BrokerUnavailable(str(exc) or type(exc).__name__) from exc

    async def close(self) -> None:
        if self._producer is not None:
            await _quiet_stop(self._producer)
            self._producer = None


async def _quiet_stop(producer: AIOKafkaProducer) -> None:
    # Stopping a producer whose broker is gone may fail in any way; there is nothing left to save.
    with contextlib.suppress(Exception):
        await asyncio.wait_for(producer.stop(), 5)


def _problem(status: int, message: str, **headers: str) -> web.Response:
    return web.json_response({"error": message}, status=status, headers=headers or None)


def make_app(
    settings: Settings, *, max_body: int = DEFAULT_MAX_BODY, producer: Producer | None = None
) -> web.Application:
    token = settings.resolved_api_token()
    sender = producer or Producer(settings)

    async def post_comments(request: web.Request) -> web.Response:
        if not token or not bearer_matches(request.headers.get("Authorization"), token):
            return _problem(401, "missing or wrong bearer token", **{"WWW-Authenticate": "Bearer"})
        if request.content_type not in (JSON, NDJSON):
            return _problem(415, f"Content-Type must be {JSON} or {NDJSON}, not {request.content_type or 'none'}")
        if request.content_length is not None and request.content_length > max_body:
            return _problem(413, f"body larger than {max_body} bytes")
        body = await request.content.read(max_body + 1)
        if len(body) > max_body:
            return _problem(413, f"body larger than {max_body} bytes")
        parsed = parse_body(body, request.content_type)
        if parsed.accepted:
            try:
                await sender.send_all(parsed.accepted)
            except BrokerUnavailable as exc:
                return _problem(
                    503, f"the broker did not acknowledge: {exc}", **{"Retry-After": str(RETRY_AFTER_SECONDS)}
                )
        return web.json_response(
            {"accepted": len(parsed.accepted), "rejected": len(parsed.errors), "errors": parsed.errors}, status=202
        )

    async def close(_app: web.Application) -> None:
        await sender.close()

    app = web.Application(client_max_size=max_body + 1)
    app.router.add_post("/v1/comments", post_comments)
    app.on_cleanup.append(close)
    return app
