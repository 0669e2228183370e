"""The runner's replay rules (streams/agents/runner.py) on a handler that fails as told."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from types import SimpleNamespace
from typing import Any

import pytest
from aiokafka.errors import KafkaConnectionError

from streams import metrics
from streams.agents import runner
from streams.ingest import Rejection


@pytest.fixture(autouse=True)
def no_backoff(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(runner, "BACKOFF_SECONDS", 0.0)


def events(n: int) -> list[Any]:
    return [SimpleNamespace(message=SimpleNamespace(offset=i)) for i in range(n)]


class Recorder:
    def __init__(self, poison: set[int] = frozenset(), transient_failures: int = 0) -> None:
        self.poison = poison
        self.transient_failures = transient_failures
        self.done: list[int] = []
        self.resets = 0
        self.dead: list[tuple[int, Rejection]] = []

    async def handle(self, batch: Sequence[Any]) -> None:
        if self.transient_failures:
            self.transient_failures -= 1
            raise KafkaConnectionError("broker away")
        if any(e.message.offset in self.poison for e in batch):
            raise ValueError("bad row")
        self.done.extend(e.message.offset for e in batch)

    def reset(self) -> None:
        self.resets += 1

    async def dead_letter(self, agent: str, event: Any, rejection: Rejection) -> None:
        self.dead.append((event.message.offset, rejection))


def run(recorder: Recorder, n: int, agent: str) -> None:
    asyncio.run(runner.handle_until_done(agent, events(n), recorder.handle, recorder.reset, recorder.dead_letter))


def test_a_poison_message_is_isolated_and_dead_lettered_and_the_rest_handled() -> None:
    r = Recorder(poison={5})
    run(r, 8, "test-runner-poison")
    assert sorted(r.done) == [0, 1, 2, 3, 4, 6, 7]
    assert [offset for offset, _ in r.dead] == [5]
    assert r.dead[0][1].reason_code == "internal"
    assert "ValueError: bad row" in r.dead[0][1].reason
    assert r.resets >= runner.ATTEMPTS_BEFORE_SPLIT  # every failed attempt discarded its staged state
    assert metrics.AGENT_CRASHES.labels("test-runner-poison")._value.get() == r.resets


def test_transient_errors_are_retried_without_dead_letters() -> None:
    r = Recorder(transient_failures=runner.ATTEMPTS_BEFORE_SPLIT + 2)
    run(r, 4, "test-runner-transient")
    assert r.done == [0, 1, 2, 3]  # the whole batch, once, in order
    assert r.dead == []


def test_a_batch_that_succeeds_is_handled_once() -> None:
    r = Recorder()
    run(r, 3, "test-runner-ok")
    assert r.done == [0, 1, 2] and r.resets == 0 and r.dead == []


def test_errors_from_fausts_producer_are_classified_by_their_cause() -> None:
    from aiokafka.errors import KafkaConnectionError, MessageSizeTooLargeError
    from faust.exceptions import ProducerSendError

    def wrapped(cause: BaseException) -> BaseException:
        try:
            try:
                raise cause
            except BaseException as inner:
                raise ProducerSendError(f"Error while sending: {inner!r}") from inner
        except ProducerSendError as outer:
            return outer

    assert runner.is_transient(wrapped(KafkaConnectionError("broker away")))  # wait for the broker
    assert not runner.is_transient(wrapped(MessageSizeTooLargeError()))  # isolate and dead-letter
    assert runner.is_transient(ConnectionResetError())
    assert not runner.is_transient(ValueError("bad row"))
