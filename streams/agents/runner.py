"""How every agent runs its batches: pinned until the outputs are acknowledged, replayed on failure.

Faust's ``take_events`` acknowledges a batch's messages when the agent takes the next batch, and
also when the agent raises (its ``finally``); a crashed actor's batch would then be committed with
nothing sent. So each message gets an extra reference (``incref``) before the batch is handled and
loses it only after the handler returned, i.e. after everything the batch produced was acknowledged
by the broker or ClickHouse and its state was persisted. A handler that raises is replayed:

* its staged state is discarded (``reset``; the tables' reads are copies, see StagedTable), and the
  same messages are handled again after a short backoff: outputs already sent are sent again, which
  the idempotent sinks and the windows' redelivery checks absorb;
* Kafka or connection errors (also when Faust wraps them in ProducerSendError) are retried for as
  long as they last (the offsets stay uncommitted: backpressure, not loss), except those that say
  the message itself is too large;
* any other error is retried twice, then the batch is split in halves to find the message that
  fails, and that one message alone goes to the dead-letter topic with the error as its reason.

Every failure is counted (``streams_agent_crashes``, /health reports a crash loop) and logged. If
the process dies instead, the pinned offsets were never committed and a restart replays them.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import faust
from aiokafka.errors import KafkaError, MessageSizeTooLargeError, RecordTooLargeError

from streams import metrics
from streams.agents.common import concrete, send_dead_letter
from streams.ingest import Rejection

log = logging.getLogger(__name__)

Handler = Callable[[Sequence[faust.EventT[Any]]], Awaitable[None]]

#: Attempts on one batch before a non-transient error is isolated by splitting the batch.
ATTEMPTS_BEFORE_SPLIT = 3
BACKOFF_SECONDS = 0.1
MAX_BACKOFF_SECONDS = 5.0
#: Kafka errors that say the message itself cannot be sent: retrying it cannot help.
PERMANENT_KAFKA_ERRORS: tuple[type[BaseException], ...] = (MessageSizeTooLargeError, RecordTooLargeError)


def is_transient(exc: BaseException) -> bool:
    """Whether `exc` says the broker or a connection is away (retry as long as it lasts) rather than
    that this batch cannot be handled. Faust wraps producer errors (ProducerSendError), so the
    whole chain of causes counts."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, PERMANENT_KAFKA_ERRORS):
            return False
        if isinstance(current, KafkaError | ConnectionError | TimeoutError):
            return True
        current = current.__cause__ or current.__context__
    return False


async def run_batches(
    agent: str,
    stream: faust.StreamT[Any],
    handle: Handler,
    *,
    max_messages: int,
    within_seconds: float,
    reset: Callable[[], None] = lambda: None,
) -> None:
    """Take batches from `stream` and handle each until it succeeds or its bad message is dead-lettered."""
    async for events in concrete(stream).take_events(max_messages, within=within_seconds):
        batch = list(events)
        for event in batch:
            event.message.incref()
        metrics.BATCH_SIZE.labels(agent).observe(len(batch))
        started = time.perf_counter()
        await handle_until_done(agent, batch, handle, reset)
        metrics.PROCESSING_SECONDS.labels(agent).observe(time.perf_counter() - started)
        # Only now may Faust commit these offsets. (Cancelled above: they stay pinned, never committed.)
        for event in batch:
            event.message.decref()


DeadLetterFn = Callable[[str, faust.EventT[Any], Rejection], Awaitable[None]]


async def handle_until_done(
    agent: str,
    batch: list[faust.EventT[Any]],
    handle: Handler,
    reset: Callable[[], None],
    dead_letter: DeadLetterFn | None = None,
) -> None:
    """Handle `batch` until it succeeds; isolate and dead-letter a message that keeps failing."""
    dead_letter = dead_letter or _dead_letter_until_sent
    attempt = 0
    while True:
        try:
            await handle(batch)
            return
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            reset()
            attempt += 1
            metrics.note_agent_crash(agent, time.time())
            transient = is_transient(exc)
            log.error(
                "agent %s failed on a batch of %d messages (attempt %d, %s): %s: %s; replaying it",
                agent,
                len(batch),
                attempt,
                "transient" if transient else "error",
                type(exc).__name__,
                exc,
                exc_info=not transient,
            )
            if transient or attempt < ATTEMPTS_BEFORE_SPLIT:
                await asyncio.sleep(min(BACKOFF_SECONDS * 2**attempt, MAX_BACKOFF_SECONDS))
                continue
            if len(batch) > 1:
                half = len(batch) // 2
                await handle_until_done(agent, batch[:half], handle, reset, dead_letter)
                await handle_until_done(agent, batch[half:], handle, reset, dead_letter)
                return
            reason = f"agent {agent} failed {attempt} times on this message: {type(exc).__name__}: {exc}"
            await dead_letter(agent, batch[0], Rejection("internal", reason[:2000]))
            return


async def _dead_letter_until_sent(agent: str, event: faust.EventT[Any], rejection: Rejection) -> None:
    delay = 0.2
    while True:
        try:
            await send_dead_letter(event, rejection, stage=agent)
            return
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.warning("agent %s could not send a dead letter (%s); retrying in %.1fs", agent, exc, delay)
            await asyncio.sleep(delay)
            delay = min(delay * 2, MAX_BACKOFF_SECONDS)
