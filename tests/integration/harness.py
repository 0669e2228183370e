"""Run real `streams worker` processes against the local broker for integration tests.

Each pipeline gets its own topic prefix, embedded ClickHouse directory, Faust data dir and web port,
so tests never see each other's data. The worker owns its chdb directory; tests query through it.
"""

from __future__ import annotations

import asyncio
import os
import random
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from streams import PROJECT_ROOT
from streams.demo import WorkerProcess
from streams.feed import FeedStats, feed
from streams.settings import Settings, load_settings
from streams.sources.registry import SourceItem
from streams.worker_client import WorkerClient

KAFKA_SCRIPT = PROJECT_ROOT / "deploy" / "kafka" / "kafka.sh"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def free_port_block(count: int) -> int:
    """A base port with `count` consecutive free ports (process i of `--processes` serves base + i),
    below Linux's ephemeral range (32768-60999) so that no outgoing connection takes one meanwhile."""
    rng = random.Random()
    for _ in range(200):
        base = rng.randrange(20000, 32768 - count)
        try:
            for port in range(base, base + count):
                with socket.socket() as s:
                    s.bind(("127.0.0.1", port))
        except OSError:
            continue
        return base
    raise RuntimeError(f"no {count} consecutive free ports in 20000-32767")


def ensure_broker() -> str:
    """Start the local broker if it is not up (idempotent), wait until it serves consumer groups;
    return its address."""
    port = os.environ.get("KAFKA_PORT", "9092")
    subprocess.run(["bash", str(KAFKA_SCRIPT), "start"], check=True, env={**os.environ, "KAFKA_PORT": port})
    address = f"127.0.0.1:{port}"
    asyncio.run(_wait_for_group_coordinator(address))
    return address


async def _wait_for_group_coordinator(address: str, timeout: float = 120.0) -> None:
    """A brand-new broker creates __consumer_offsets on the first group join, which can take long
    enough for the first test's worker to time out: join and commit once here instead."""
    from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

    topic = "streams-test-warmup"
    producer = AIOKafkaProducer(bootstrap_servers=address)
    await producer.start()
    try:
        await producer.send_and_wait(topic, b"warm up")
    finally:
        await producer.stop()
    consumer = AIOKafkaConsumer(
        bootstrap_servers=address,
        group_id="streams-test-warmup",
        enable_auto_commit=False,
        auto_offset_reset="earliest",
    )
    await consumer.start()
    try:
        consumer.assign([TopicPartition(topic, 0)])
        deadline = time.monotonic() + timeout
        while True:
            try:
                await consumer.getmany(timeout_ms=500)
                await consumer.commit()
                return
            except Exception:
                if time.monotonic() > deadline:
                    raise
                await asyncio.sleep(1.0)
    finally:
        await consumer.stop()


class Pipeline:
    def __init__(
        self, workdir: Path, broker: str, *, worker_args: tuple[str, ...] = (), web_ports: int = 1, **overrides: str
    ) -> None:
        self.workdir = workdir
        prefix = f"t{uuid.uuid4().hex[:10]}."
        self.env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("STREAMS_")},
            "STREAMS_BROKER": broker,
            "STREAMS_TOPIC_PREFIX": prefix,
            "STREAMS_CLICKHOUSE_DSN": f"chdb://{workdir / 'chdb'}",
            "STREAMS_DATA_DIR": str(workdir / "faust"),
            "STREAMS_WEB_PORT": str(free_port() if web_ports == 1 else free_port_block(web_ports)),
            "STREAMS_PARTITIONS": "2",
            "STREAMS_SINK_BATCH_SECONDS": "0.3",
            "STREAMS_LOG_LEVEL": os.environ.get("STREAMS_TEST_LOG_LEVEL", "warning"),  # info to diagnose a run
            # A killed worker's partitions move on after this (the broker's minimum is 6 s).
            "STREAMS_SESSION_TIMEOUT_SECONDS": "6",
            "STREAMS_WINDOW_IDLE_SECONDS": "3",
            # The windows cross-checks read every window through /sql (100,000 rows is the default cap).
            "STREAMS_SQL_MAX_RESULT_ROWS": "5000000",
            **overrides,
        }
        self.settings: Settings = load_settings(self.env)
        self.client = WorkerClient(self.settings)
        self.worker = WorkerProcess(self.settings, workdir / "worker.log", env=self.env, args=worker_args)

    def start(self) -> Pipeline:
        self.worker.start()
        self.worker.wait_ready(self.client, timeout=120)
        return self

    def stop(self) -> int | None:
        return self.worker.stop()

    def kill(self) -> None:
        """Crash the worker: no shutdown, no final commit."""
        assert self.worker.proc is not None
        self.worker.proc.kill()
        self.worker.proc.wait()

    def feed_items(self, items: Iterable[SourceItem], rate: float | None = None) -> FeedStats:
        return asyncio.run(feed(self.settings, items, rate=rate))

    def feed_raw(self, key: str, values: Iterable[bytes]) -> FeedStats:
        return self.feed_items(SourceItem(key=key, value=v) for v in values)

    def query(self, sql: str, parameters: dict[str, Any] | None = None) -> list[tuple[Any, ...]]:
        return self.client.query(sql, parameters).result_rows

    def scalar(self, sql: str) -> Any:
        return self.query(sql)[0][0]

    def wait_until(self, sql: str, predicate: Any, *, timeout: float = 60.0) -> Any:
        """Poll `sql` until predicate(first value) holds; return that value (or fail with the last one)."""
        deadline = time.monotonic() + timeout
        value: Any = None
        while time.monotonic() < deadline:
            if not self.worker.running():
                raise AssertionError(f"worker died:\n{self.worker.tail(60)}")
            value = self.scalar(sql)
            if predicate(value):
                return value
            time.sleep(0.3)
        raise AssertionError(f"timed out: {sql!r} last gave {value!r}\n{self.worker.tail(40)}")

    def metric(self, name: str, **labels: str) -> float:
        """Sum of a metric's samples on the worker's /metrics that carry the given labels."""
        from prometheus_client.parser import text_string_to_metric_families

        text = self.client.http.request("GET", f"{self.settings.worker_url}/metrics").data.decode()
        total = 0.0
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                    total += sample.value
        return total

    def wait_for_metric(self, name: str, predicate: Any, *, timeout: float = 60.0, **labels: str) -> float:
        deadline = time.monotonic() + timeout
        value = 0.0
        while time.monotonic() < deadline:
            value = self.metric(name, **labels)
            if predicate(value):
                return value
            time.sleep(0.3)
        raise AssertionError(f"timed out: {name}{labels} last {value}\n{self.worker.tail(40)}")

    def cli(self, *args: str, stdin: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
        return subprocess.run(
            [sys.executable, "-m", "streams.cli", *args], input=stdin, capture_output=True, env=self.env, timeout=120
        )
