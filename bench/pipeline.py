"""Pipeline benchmark: the whole of `streams worker` against a plain consumer, on the same comments.

Run by `make bench-pipeline` (never by `make test`). One run:

1. generates N seeded, realistic raw events (heavy-tailed thread sizes and author activity, reply
   trees, ~6% toxic and ~3% spam bodies of 0-400 words, ~2% edits and ~1% deletions, out-of-order
   arrival) and pre-loads them into a fresh raw topic (its own topic prefix, P partitions);
2. the raw ceiling: a consumer with no processing (librdkafka through confluent-kafka when it is
   installed, aiokafka otherwise) hands batches of values to ClickHouse's own JSONEachRow parser in
   an embedded chDB directory of its own;
3. the project: `streams worker` on a fresh embedded database, from process start until every
   comment is in `comments FINAL` and every thread and author window is in `activity_windows`;
   CPU seconds and peak RSS of every worker process from /proc;
4. latency: with the worker running and caught up, comments produced at a fixed rate (2,000/s for
   60 s by default); each comment's produce time against the first poll that finds it queryable.

"comments/s" counts raw events (creations, edits, deletions): what a producer writes to comments.raw.
Results: a row in the "Pipeline" section of bench/RESULTS.md and bench/out/pipeline.json.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import os
import platform
import random
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import msgspec

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from streams import topics  # noqa: E402
from streams.models import CommentEvent  # noqa: E402
from streams.settings import Settings, load_settings  # noqa: E402
from streams.windows.archive import generate_archive  # noqa: E402
from streams.worker_client import WorkerClient  # noqa: E402
from tests.integration.harness import free_port_block  # noqa: E402

OUT_DIR = ROOT / "bench" / "out"
RESULTS = ROOT / "bench" / "RESULTS.md"
SAMPLES = ROOT / "streams" / "samples"
SECTION_START, SECTION_END = "<!-- pipeline:start -->", "<!-- pipeline:end -->"
LATENCY_SOURCE = "bench-latency"
CLK_TCK = os.sysconf("SC_CLK_TCK")


def log(message: str) -> None:
    print(f"[{datetime.now(UTC):%H:%M:%S}] {message}", flush=True)


# -- the comments ------------------------------------------------------------------------------

TOXIC_PHRASES = (
    "What an absolute moron, this is the dumbest take I have read all week.",
    "This is total shit and you know it.",
    "You are a pathetic idiot and everyone here can see it.",
    "Shut up, you stupid clown.",
    "Fuck you and your whole crooked party.",
    "Go back where you came from, you worthless piece of garbage.",
    "Keep talking and you're dead meat.",
    "Only a brain-dead loser would believe this crap.",
)
SPAM_PHRASES = (
    "I make $85 per hour working from home, click here: http://cash-now.example/join",
    "Earn money online! Extra income of $9000 in a week, limited time offer http://bit.example/x",
    "Buy now, 100% free trial, act now: http://pills.example http://pills.example/viagra",
    "Make money from home, whatsapp +1 555 0100 2000 for details, click the link http://job.example",
)
NAME_PARTS = (
    "Dabooda", "IH8OBAMA", "Tarzan", "Pinto", "Bastiat", "Chupacabra", "Yen Cross", "GreatUncle", "Son of Loki",
    "cheech_wizard", "Bes", "Looney", "HRClinton", "Kafir", "MANvsMACHINE", "Lore", "BaNNeD oN THe RuN",
    "Joe Davola", "Ms No Name", "techpriest", "silverer", "el buitre", "NoDebt", "Zorba", "Consuelo",
)  # fmt: skip


def sample_sentences() -> list[str]:
    """Sentences from the bundled thread dumps (article and comments): the clean vocabulary."""
    sentences: list[str] = []
    for path in sorted(SAMPLES.glob("*.txt")):
        text = path.read_text(encoding="utf-8")
        for line in text.splitlines():
            if "Permalink" in line or line.startswith("In reply to by"):
                continue
            for sentence in re.split(r"(?<=[.!?])\s+", line.strip()):
                if len(sentence.split()) >= 3:
                    sentences.append(sentence)
    return sentences


def author_name(archive_author: str) -> str:
    index = int(archive_author.lstrip("u"))
    base = NAME_PARTS[index % len(NAME_PARTS)]
    return base if index < len(NAME_PARTS) else f"{base}{index // len(NAME_PARTS)}"


class Body:
    """Bodies of 0-400 words (lognormal: median ~25 words), ~6% toxic and ~3% spam."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.sentences = sample_sentences()

    def words(self) -> int:
        if self.rng.random() < 0.02:
            return 0
        return min(400, int(self.rng.lognormvariate(3.2, 1.0)))

    def clean(self, words: int) -> str:
        out: list[str] = []
        count = 0
        while count < words:
            sentence = self.sentences[self.rng.randrange(len(self.sentences))]
            out.append(sentence)
            count += len(sentence.split())
        return " ".join(out)

    def make(self, kind: str) -> str:
        words = self.words()
        if kind == "toxic":
            return f"{self.clean(min(words, 60))} {self.rng.choice(TOXIC_PHRASES)}".strip()
        if kind == "spam":
            return self.rng.choice(SPAM_PHRASES)
        return self.clean(words)


@dataclass
class Workload:
    messages: list[tuple[bytes, bytes]]  # (key, value) in arrival order
    comments: int  # distinct comments created
    visible: int  # comments left in `comments FINAL` (deletions excluded)
    edited: int
    deleted: int
    toxic: int
    spam: int
    body_words_mean: float
    threads: int


def generate(n_events: int, seed: int) -> Workload:
    """`n_events` raw events: ~97% creations, ~2% edits and ~1% deletions of earlier comments
    (a few dozen messages after them), in shuffled arrival order (at most 4 minutes back, inside
    the default allowed lateness)."""
    rng = random.Random(seed)
    body = Body(rng)
    n_comments = max(1, round(n_events / 1.03))
    threads = max(20, n_comments // 80)
    items = generate_archive(
        n_comments,
        seed=seed,
        start=datetime(2026, 1, 5, tzinfo=UTC),
        duration=timedelta(days=max(1, n_comments // 100_000)),
        threads=threads,
        authors=max(100, n_comments // 8),
        shuffle_within=timedelta(minutes=4),
    )
    encoder = msgspec.json.Encoder()
    messages: list[tuple[bytes, bytes]] = []
    later: dict[int, list[tuple[bytes, bytes]]] = {}
    edited = deleted = toxic = spam = words = 0
    wave_bodies: dict[str, str] = {}
    for i, it in enumerate(items):
        if it.fingerprint.startswith(("pasta", "wave")):
            text = wave_bodies.setdefault(it.fingerprint, body.make("spam"))
            kind = "spam"
        else:
            r = rng.random()
            kind = "toxic" if r < 0.06 else "spam" if r < 0.09 else "clean"
            text = body.make(kind)
        toxic += kind == "toxic"
        spam += kind == "spam"
        words += len(text.split())
        event = CommentEvent(
            event_id=f"e-{it.comment_id}",
            source="bench",
            thread_id=f"bench-{it.thread_id}",
            thread_title=f"Thread {it.thread_id}",
            comment_id=it.comment_id,
            parent_author=author_name(it.parent_author) if it.parent_author else None,
            author=author_name(it.author),
            posted_at=datetime.fromtimestamp(it.posted_at_ms / 1000, UTC),
            body=text,
        )
        key = event.thread_id.encode()
        messages.append((key, encoder.encode(event)))
        messages.extend(later.pop(i, []))
        r = rng.random()
        change: CommentEvent | None = None
        if r < 0.01:
            change = msgspec.structs.replace(event, event_type="comment.deleted", body="")
            deleted += 1
        elif r < 0.03:
            change = msgspec.structs.replace(event, event_type="comment.edited", body=body.make("clean"))
            edited += 1
        if change is not None:
            change = msgspec.structs.replace(
                change,
                event_id=f"{event.event_id}-{change.event_type}",
                edited_at=event.posted_at + timedelta(minutes=2),
            )
            later.setdefault(i + rng.randrange(20, 60), []).append((key, encoder.encode(change)))
    for pending in later.values():
        messages.extend(pending)
    return Workload(
        messages=messages,
        comments=len(items),
        visible=len(items) - deleted,
        edited=edited,
        deleted=deleted,
        toxic=toxic,
        spam=spam,
        body_words_mean=words / max(1, len(items)),
        threads=len({it.thread_id for it in items}),
    )


# -- Kafka -------------------------------------------------------------------------------------


async def produce(settings: Settings, messages: list[tuple[bytes, bytes]]) -> float:
    from aiokafka import AIOKafkaProducer

    from streams.kafka_admin import ensure_topics

    await ensure_topics(settings)
    producer = AIOKafkaProducer(
        bootstrap_servers=settings.bootstrap_servers, acks="all", linger_ms=20, max_batch_size=1024 * 1024
    )
    await producer.start()
    started = time.perf_counter()
    try:
        pending = []
        for key, value in messages:
            pending.append(await producer.send(settings.topic(topics.RAW), value=value, key=key))
            if len(pending) >= 20_000:
                await asyncio.gather(*pending)
                pending.clear()
        await asyncio.gather(*pending)
    finally:
        await producer.stop()
    return time.perf_counter() - started


async def delete_topics(settings: Settings) -> int:
    """Delete every topic of this run (its prefix): internal topics and changelogs hold GBs at 1M."""
    from aiokafka.admin import AIOKafkaAdminClient

    admin = AIOKafkaAdminClient(bootstrap_servers=settings.bootstrap_servers, request_timeout_ms=30000)
    await admin.start()
    try:
        names = [t for t in await admin.list_topics() if t.startswith(settings.topic_prefix)]
        if names:
            await admin.delete_topics(names)
        return len(names)
    finally:
        await admin.close()


RAW_TABLE = """
CREATE TABLE IF NOT EXISTS raw_comments (
    schema_version UInt8, event_id String, event_type LowCardinality(String), source LowCardinality(String),
    thread_id String, thread_title Nullable(String), comment_id String, parent_id Nullable(String),
    parent_author Nullable(String), author String, posted_at DateTime64(3, 'UTC'),
    edited_at Nullable(DateTime64(3, 'UTC')), body String, url Nullable(String)
) ENGINE = ReplacingMergeTree ORDER BY (thread_id, comment_id)"""


def raw_ceiling(settings: Settings, total: int, chdb_dir: Path, timeout: float) -> dict[str, Any]:
    """Consume the raw topic with no processing; each batch of values goes to chDB as JSONEachRow."""
    import clickhouse_connect

    chdb_dir.mkdir(parents=True, exist_ok=True)
    client = clickhouse_connect.get_client(dsn=f"chdb://{chdb_dir}")
    client.command(RAW_TABLE)
    insert_settings = {"date_time_input_format": "best_effort"}
    topic = settings.topic(topics.RAW)
    group = settings.topic("bench-ceiling")
    cpu0, started = time.process_time(), time.perf_counter()
    first: float | None = None
    done = 0
    batches = 0

    def insert(values: list[bytes]) -> None:
        nonlocal done, batches
        client.raw_insert("raw_comments", insert_block=b"\n".join(values), fmt="JSONEachRow", settings=insert_settings)
        done += len(values)
        batches += 1

    try:
        from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

        library = "confluent-kafka (librdkafka)"
        consumer = Consumer(
            {
                "bootstrap.servers": ",".join(settings.bootstrap_servers),
                "group.id": group,
                "enable.auto.commit": False,
                "fetch.max.bytes": 64 * 1024 * 1024,
            }
        )
        # Assigned, not subscribed: no group join in the measurement (the worker's join is in its figure).
        consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in range(settings.partitions)])
        try:
            while done < total and time.perf_counter() - started < timeout:
                msgs = consumer.consume(num_messages=10_000, timeout=0.5)
                values = [m.value() for m in msgs if m.error() is None and m.value() is not None]
                if values:
                    if first is None:
                        first = time.perf_counter()
                    insert(values)
                    consumer.commit(asynchronous=False)
        finally:
            consumer.close()
    except ImportError:
        library = "aiokafka"

        async def consume() -> None:
            from aiokafka import AIOKafkaConsumer

            consumer = AIOKafkaConsumer(
                topic,
                bootstrap_servers=settings.bootstrap_servers,
                group_id=group,
                auto_offset_reset="earliest",
                enable_auto_commit=False,
                max_partition_fetch_bytes=8 * 1024 * 1024,
            )
            await consumer.start()
            try:
                while done < total and time.perf_counter() - started < timeout:
                    batch = await consumer.getmany(timeout_ms=500, max_records=10_000)
                    values = [m.value for records in batch.values() for m in records if m.value is not None]
                    if values:
                        nonlocal first
                        if first is None:
                            first = time.perf_counter()
                        insert(values)
                        await consumer.commit()
            finally:
                await consumer.stop()

        asyncio.run(consume())
    seconds = time.perf_counter() - started
    cpu = time.process_time() - cpu0
    landed = int(client.command("SELECT count() FROM raw_comments"))
    client.close()
    return {
        "library": library,
        "events": done,
        "rows_landed": landed,
        "batches": batches,
        "seconds": round(seconds, 3),
        "events_per_second": round(done / seconds, 1) if seconds else None,
        "seconds_to_first_message": round(first - started, 3) if first else None,
        "events_per_second_from_first_message": round(done / (started + seconds - first), 1) if first else None,
        "cpu_seconds": round(cpu, 2),
        "cpu_seconds_per_1000": round(1000 * cpu / max(1, done), 4),
        "complete": done >= total,
    }


# -- the worker's processes --------------------------------------------------------------------


@dataclass
class ProcSample:
    pid: int
    label: str
    cpu_seconds: float
    rss_peak_mb: float
    rss_mb: float


def _read_proc(pid: int) -> ProcSample | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        status = Path(f"/proc/{pid}/status").read_text()
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return None
    fields = stat[stat.rindex(")") + 2 :].split()
    cpu = (int(fields[11]) + int(fields[12])) / CLK_TCK  # utime + stime
    values = {}
    for line in status.splitlines():
        name, _, rest = line.partition(":")
        if name in ("VmHWM", "VmRSS"):
            values[name] = int(rest.split()[0]) / 1024
    args = [a.decode(errors="replace") for a in cmdline if a]
    tail = args[args.index("worker") :] if "worker" in args else args[-3:]
    return ProcSample(pid, " ".join(tail), cpu, values.get("VmHWM", 0.0), values.get("VmRSS", 0.0))


def descendants(root: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        ppid = int(stat[stat.rindex(")") + 2 :].split()[1])
        children.setdefault(ppid, []).append(int(entry.name))
    out, todo = [], [root]
    while todo:
        pid = todo.pop()
        out.append(pid)
        todo.extend(children.get(pid, []))
    return out


class ProcessWatch:
    """Samples the worker's process tree every second; keeps each process's last sample, so a
    process that exited (or was restarted) still counts with what it had used."""

    def __init__(self, root: int) -> None:
        self.root = root
        self.samples: dict[int, ProcSample] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> ProcessWatch:
        self._thread.start()
        return self

    def sample(self) -> dict[int, ProcSample]:
        for pid in descendants(self.root):
            s = _read_proc(pid)
            if s is not None and "python" in Path(f"/proc/{pid}/exe").resolve().name:
                self.samples[pid] = s
        return dict(self.samples)

    def _run(self) -> None:
        while not self._stop.wait(1.0):
            with contextlib.suppress(Exception):
                self.sample()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)


class Worker:
    def __init__(self, env: dict[str, str], processes: int, log_path: Path) -> None:
        self.env = env
        self.processes = processes
        self.log_path = log_path
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        args = [sys.executable, "-m", "streams.cli", "worker"]
        if self.processes != 1:
            args += ["--processes", str(self.processes)]
        self.proc = subprocess.Popen(
            args,
            stdout=self.log_path.open("ab"),
            stderr=subprocess.STDOUT,
            env=self.env,
            cwd=ROOT,
            start_new_session=True,
        )

    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def stop(self, timeout: float = 60.0) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            log(f"worker did not stop in {timeout:.0f}s: killing its process group")
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)  # stragglers of a supervisor's children too
        self.proc.wait()


def scalar(client: WorkerClient, sql: str) -> Any:
    return client.query(sql).result_rows[0][0]


_JEMALLOC_TOTALS = re.compile(r"Allocated: (\d+), active: (\d+), metadata: (\d+).*?resident: (\d+), mapped: (\d+)")


def clickhouse_memory_mb(client: WorkerClient) -> dict[str, float]:
    """What the ClickHouse engine itself holds, in MB: its jemalloc totals (the embedded engine
    allocates with its own jemalloc, apart from Python's heap) and its MemoryTracking; {} when the
    server does not say (another allocator)."""
    out: dict[str, float] = {}
    with contextlib.suppress(Exception):  # a diagnostic: a server without these tables says nothing
        found = _JEMALLOC_TOTALS.search(str(scalar(client, "SELECT stats FROM system.jemalloc_stats")))
        names = ("allocated", "active", "metadata", "resident", "mapped")
        for name, value in zip(names, found.groups() if found else (), strict=False):
            out[f"jemalloc_{name}"] = round(int(value) / 2**20, 1)
        tracked = scalar(client, "SELECT value FROM system.metrics WHERE metric = 'MemoryTracking'")
        out["memory_tracking"] = round(int(tracked) / 2**20, 1)
    return out


def metric_samples(client: WorkerClient, urls: list[str]) -> Iterator[Any]:
    """Every sample of every process's /metrics (a process that does not answer is skipped)."""
    from prometheus_client.parser import text_string_to_metric_families

    for url in urls:
        try:
            text = client.http.request("GET", f"{url}/metrics", timeout=5.0).data.decode()
        except Exception:
            continue
        for family in text_string_to_metric_families(text):
            yield from family.samples


def metric_sums(client: WorkerClient, urls: list[str], name: str, label: str) -> dict[str, float]:
    """Sum of `name` per value of `label` over the processes' /metrics."""
    totals: dict[str, float] = {}
    for s in metric_samples(client, urls):
        if s.name == name:
            key = s.labels.get(label, "")
            totals[key] = totals.get(key, 0.0) + s.value
    return totals


#: Histograms whose slow tail the latency phase reports (batch times per agent, GC pauses), by
#: the label that names whose they are.
SLOW_HISTOGRAMS = {"streams_processing_seconds": "agent", "streams_gc_pause_seconds": "generation"}
SLOW_BOUNDS = ("1.0", "2.5", "5.0", "10.0")


def histogram_buckets(
    client: WorkerClient, urls: list[str], histograms: dict[str, str], bounds: tuple[str, ...]
) -> dict[tuple[str, str], dict[str, float]]:
    """Per (histogram, value of its label in `histograms`), summed over the processes: the
    cumulative bucket counts at `bounds` and "+Inf" (all), and "sum" (seconds in all)."""
    out: dict[tuple[str, str], dict[str, float]] = {}
    for sample in metric_samples(client, urls):
        histogram, _, series = sample.name.rpartition("_")
        label = histograms.get(histogram)
        if label is None or series not in ("bucket", "sum"):
            continue
        key = "sum" if series == "sum" else sample.labels.get("le", "")
        if key != "sum" and key != "+Inf" and key not in bounds:
            continue
        buckets = out.setdefault((histogram, sample.labels.get(label, "")), {})
        buckets[key] = buckets.get(key, 0.0) + sample.value
    return out


def slow_snapshot(client: WorkerClient, urls: list[str]) -> dict[str, dict[str, float]]:
    """Per agent / GC generation ("gc<n>"), summed over the processes: the cumulative bucket counts
    of SLOW_HISTOGRAMS at SLOW_BOUNDS and "+Inf" (all), and "sum" (seconds in all)."""
    return {
        owner if SLOW_HISTOGRAMS[histogram] == "agent" else f"gc{owner}": buckets
        for (histogram, owner), buckets in histogram_buckets(client, urls, SLOW_HISTOGRAMS, SLOW_BOUNDS).items()
    }


def slow_tail(before: dict[str, dict[str, float]], after: dict[str, dict[str, float]]) -> dict[str, dict[str, float]]:
    """Batches (or GC pauses) longer than each of SLOW_BOUNDS between two snapshots, and the seconds
    spent in them in all."""
    result: dict[str, dict[str, float]] = {}
    for who, now in after.items():
        then = before.get(who, {})
        row: dict[str, float] = {
            f"over {bound} s": int(
                (now.get("+Inf", 0.0) - now.get(bound, 0.0)) - (then.get("+Inf", 0.0) - then.get(bound, 0.0))
            )
            for bound in SLOW_BOUNDS
            if bound in now
        }
        # Seconds spent in the agent's batches (or in GC) over the interval: its share of the wall time.
        row["busy seconds"] = round(now.get("sum", 0.0) - then.get("sum", 0.0), 2)
        if any(row.values()):
            result[who] = row
    return result


GC_BOUNDS = ("0.1", "0.5", "1.0")


def gc_summary(client: WorkerClient, urls: list[str]) -> dict[str, dict[str, float]]:
    """Python's cyclic collections so far, per generation, summed over the processes: how many,
    the seconds they stopped the process in all, and how many took longer than each of GC_BOUNDS."""
    seen = histogram_buckets(client, urls, {"streams_gc_pause_seconds": "generation"}, GC_BOUNDS)
    return {
        f"gen{generation}": {
            "collections": int(row.get("+Inf", 0.0)),
            "seconds": round(row.get("sum", 0.0), 2),
            **{
                f"over {bound} s": int(row.get("+Inf", 0.0) - row.get(bound, 0.0))
                for bound in GC_BOUNDS
                if bound in row
            },
        }
        for (_, generation), row in sorted(seen.items())
    }


WINDOWS_DONE_SQL = """
SELECT
  (SELECT uniqExact(thread_id, toStartOfMinute(posted_at)) FROM comments FINAL) AS thread_expected,
  (SELECT count() FROM activity_windows FINAL WHERE kind = 'thread_1m' AND comments > 0) AS thread_emitted,
  (SELECT sum(comments) FROM activity_windows FINAL WHERE kind = 'thread_1m') AS thread_counted,
  (SELECT uniqExact(author, toStartOfMinute(posted_at)) FROM comments FINAL) AS author_expected,
  (SELECT count() FROM activity_windows FINAL WHERE kind = 'author_1m' AND comments > 0) AS author_emitted,
  (SELECT sum(comments) FROM activity_windows FINAL WHERE kind = 'author_1m') AS author_counted"""


def windows_done(client: WorkerClient, visible: int) -> bool:
    te, tw, tc, ae, aw, ac = client.query(WINDOWS_DONE_SQL).result_rows[0]
    return bool(te == tw and ae == aw and tc == visible and ac == visible)


#: How long after every comment landed the windows may take before late events end the run.
WINDOWS_GRACE_SECONDS = 120.0


def broker_pid() -> int | None:
    """The local broker's pid when `deploy/kafka/kafka.sh` runs it (its pid file), so that its CPU is
    counted as a stage of its own: on a 2-core machine it competes with the workers."""
    run_dir = Path(os.environ.get("KAFKA_HOME_DIR", ROOT / "deploy" / "kafka" / "run"))
    try:
        pid = int((run_dir / f"kafka-{os.environ.get('KAFKA_PORT', '9092')}.pid").read_text().strip())
    except (OSError, ValueError):
        return None
    return pid if Path(f"/proc/{pid}").exists() else None


def run_project(
    env: dict[str, str], settings: Settings, work: Workload, args: argparse.Namespace, workdir: Path
) -> Any:
    total = len(work.messages)
    worker = Worker(env, args.processes, workdir / "worker.log")
    client = WorkerClient(settings, timeout=30.0)
    urls = [f"http://{settings.web_host}:{settings.web_port + i}" for i in range(args.processes)]
    result: dict[str, Any] = {}
    started = time.perf_counter()
    worker.start()
    assert worker.proc is not None
    watch = ProcessWatch(worker.proc.pid).start()
    samples: dict[int, ProcSample] = {}
    peaks: dict[int, ProcSample] = {}
    deadline = started + args.timeout
    t_ready = t_first = t_comments = t_windows = None
    cpu_at_ready: dict[int, float] = {}
    broker = broker_pid()
    broker_at_ready: ProcSample | None = None
    broker_at_end: ProcSample | None = None
    last_report = 0.0
    landed = 0
    # RSS of each worker process as each tenth of the rows lands: flat memory shows within one run.
    rss_by_landed: list[dict[str, Any]] = []
    try:
        while time.perf_counter() < deadline:
            if not worker.running():
                raise RuntimeError(f"the worker exited:\n{worker.tail()}")
            now = time.perf_counter()
            try:
                if t_ready is None:
                    if client.alive():
                        scalar(client, "SELECT count() FROM comments")
                        t_ready = now
                        cpu_at_ready = {p: s.cpu_seconds for p, s in watch.sample().items()}
                        broker_at_ready = _read_proc(broker) if broker else None
                        log(f"worker answers after {t_ready - started:.1f}s")
                    else:
                        time.sleep(0.5)
                        continue
                landed = int(scalar(client, "SELECT count() FROM comments"))
                if landed and t_first is None:
                    t_first = now
                if landed * 10 >= (len(rss_by_landed) + 1) * (work.visible + work.deleted):
                    rss = {str(pid): round(x.rss_mb, 1) for pid, x in sorted(watch.sample().items())}
                    entries = metric_sums(client, urls, "streams_state_entries", "table")
                    rss_by_landed.append(
                        {
                            "rows_landed": landed,
                            "rss_mb": rss,
                            "clickhouse_mb": clickhouse_memory_mb(client),
                            "state_entries": entries,
                        }
                    )
                if t_comments is None and landed >= work.visible:
                    final = int(scalar(client, "SELECT count() FROM comments FINAL"))
                    edited = int(scalar(client, "SELECT countIf(edited_at IS NOT NULL) FROM comments FINAL"))
                    if final == work.visible and edited == work.edited:
                        t_comments = now
                        log(f"all {final} comments queryable after {t_comments - started:.1f}s")
                if t_comments is not None and windows_done(client, work.visible):
                    t_windows = now
                    log(f"every window queryable after {t_windows - started:.1f}s")
                    break
                if t_comments is not None and now - t_comments > WINDOWS_GRACE_SECONDS:
                    # Comments the windows took as late never complete their windows: say so rather
                    # than wait out the timeout (seen once with 8 partitions; bench/RESULTS.md).
                    late = int(scalar(client, "SELECT count() FROM late_events FINAL"))
                    if late:
                        result["late_events"] = late
                        log(f"windows incomplete {WINDOWS_GRACE_SECONDS:.0f}s after the comments: {late} late events")
                        break
            except Exception as exc:  # a slow answer while the worker is busy: try again
                log(f"poll failed ({exc}); retrying")
            if now - last_report >= 5:
                last_report = now
                elapsed = now - started
                log(f"{landed}/{work.visible + work.deleted} rows landed, {elapsed:.0f}s, {landed / elapsed:.0f}/s")
            time.sleep(0.5)
        samples = watch.sample()
        broker_at_end = _read_proc(broker) if broker else None
        result["processing_seconds"] = metric_sums(
            client, urls, "streams_processing_seconds_sum", "agent"
        ) or metric_sums(client, urls, "streams_processing_seconds_total", "agent")
        result["gc"] = gc_summary(client, urls)
        log(f"garbage collections until then: {result['gc']}")
        peaks = samples
        if args.latency_seconds > 0 and t_windows is not None:
            before = slow_snapshot(client, urls)
            result["latency"] = run_latency(settings, client, args)
            result["latency"]["slow_batches_during_latency"] = slow_tail(before, slow_snapshot(client, urls))
            peaks = watch.sample()  # CPU stays the throughput phase's; peak RSS covers both
    finally:
        watch.stop()
        worker.stop()
    end = (t_windows or time.perf_counter()) - started
    result.update(
        {
            "complete": t_windows is not None,
            "seconds_to_ready": round(t_ready - started, 2) if t_ready else None,
            "seconds_to_first_row": round(t_first - started, 2) if t_first else None,
            "seconds_to_all_comments": round(t_comments - started, 2) if t_comments else None,
            "seconds_to_all_windows": round(end, 2),
            "events_per_second": round(total / end, 1) if t_windows else None,
            "events_per_second_comments_only": round(total / (t_comments - started), 1) if t_comments else None,
            "events_per_second_from_first_row": round(total / (t_windows - t_first), 1)
            if t_windows and t_first
            else None,
        }
    )
    result["rss_by_rows_landed"] = rss_by_landed
    result["processes"] = [
        {
            "pid": s.pid,
            "role": s.label,
            "cpu_seconds": round(s.cpu_seconds, 2),
            "cpu_seconds_after_ready": round(s.cpu_seconds - cpu_at_ready.get(s.pid, 0.0), 2),
            "cpu_seconds_per_1000": round(1000 * (s.cpu_seconds - cpu_at_ready.get(s.pid, 0.0)) / total, 3),
            "rss_peak_mb": round(max(s.rss_peak_mb, peaks[s.pid].rss_peak_mb if s.pid in peaks else 0.0), 1),
        }
        for s in sorted(samples.values(), key=lambda s: s.pid)
    ]
    if broker_at_ready is not None and broker_at_end is not None:
        broker_cpu = broker_at_end.cpu_seconds - broker_at_ready.cpu_seconds
        result["broker_cpu_seconds_per_1000"] = round(1000 * broker_cpu / total, 3)
    if not result["complete"]:
        result["worker_log_tail"] = worker.tail(40)
    return result


# -- latency -----------------------------------------------------------------------------------


def run_latency(settings: Settings, client: WorkerClient, args: argparse.Namespace) -> dict[str, Any]:
    """Comments produced at `rate`/s for `seconds`; latency = first poll that finds the comment in
    `comments` minus its produce time (resolution: the poll interval, 0.5 s; an upper bound)."""
    rate, seconds = args.latency_rate, args.latency_seconds
    count = int(rate * seconds)
    rng = random.Random(args.seed + 1)
    body = Body(rng)
    encoder = msgspec.json.Encoder()
    sent_at: list[float] = [math.nan] * count
    seen_at: list[float] = [math.nan] * count
    done = threading.Event()
    log(f"latency: {count} comments at {rate:.0f}/s")

    async def produce_at_rate() -> None:
        from aiokafka import AIOKafkaProducer

        producer = AIOKafkaProducer(bootstrap_servers=settings.bootstrap_servers, acks="all", linger_ms=5)
        await producer.start()
        try:
            t0 = time.monotonic()
            pending = []
            for i in range(count):
                due = t0 + i / rate
                delay = due - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)
                r = rng.random()
                kind = "toxic" if r < 0.06 else "spam" if r < 0.09 else "clean"
                thread = f"lat-t{min(rng.randrange(200), rng.randrange(200)):03d}"
                event = CommentEvent(
                    event_id=f"e-lat-{i:07d}",
                    source=LATENCY_SOURCE,
                    thread_id=thread,
                    comment_id=f"lat-{i:07d}",
                    author=author_name(f"u{int(rng.paretovariate(1.2)) % 5000:06d}"),
                    posted_at=datetime.now(UTC),
                    body=body.make(kind),
                )
                sent_at[i] = time.monotonic()
                pending.append(
                    await producer.send(settings.topic(topics.RAW), encoder.encode(event), key=thread.encode())
                )
                if len(pending) >= 1000:
                    await asyncio.gather(*pending)
                    pending.clear()
            await asyncio.gather(*pending)
        finally:
            await producer.stop()
            done.set()

    producer_thread = threading.Thread(target=lambda: asyncio.run(produce_at_rate()), daemon=True)
    producer_thread.start()
    low = 0  # every comment below this index has been seen
    deadline = time.monotonic() + seconds + args.latency_drain
    while time.monotonic() < deadline and low < count:
        time.sleep(0.5)
        try:
            rows = client.query(
                "SELECT toUInt32(substring(comment_id, 5)) AS i FROM comments "
                f"WHERE source = '{LATENCY_SOURCE}' AND i >= {low}"
            ).result_rows
        except Exception as exc:
            log(f"latency poll failed ({exc})")
            continue
        now = time.monotonic()
        for (i,) in rows:
            if i < count and math.isnan(seen_at[i]):
                seen_at[i] = now
        while low < count and not math.isnan(seen_at[low]):
            low += 1
        if int(now) % 5 == 0:
            log(f"latency: {low}/{count} seen in order")
    producer_thread.join(timeout=30)
    latencies = sorted(s - p for s, p in zip(seen_at, sent_at, strict=True) if not math.isnan(s) and not math.isnan(p))
    # The p99 of each 5 s of the offered stream: a tail at the start only is the throughput phase's
    # leftover work, one throughout is capacity, one in bursts is a stall.
    by_slice: dict[int, list[float]] = {}
    for i, (s_at, p_at) in enumerate(zip(seen_at, sent_at, strict=True)):
        if not math.isnan(s_at) and not math.isnan(p_at):
            by_slice.setdefault(int(i / rate // 5), []).append(s_at - p_at)
    p99_by_5s = [round(sorted(v)[int(0.99 * (len(v) - 1))], 2) for _, v in sorted(by_slice.items())]
    missing = count - len(latencies)

    def pct(q: float) -> float | None:
        if missing and q * count > len(latencies):
            return None  # the quantile lies among comments not seen before the deadline
        return round(latencies[min(len(latencies) - 1, int(q * count))], 3) if latencies else None

    # Where the time goes: produce -> enrich (each comment's enriched_at minus its posted_at, which
    # the producer set to the produce time; same clock) against produce -> queryable.
    try:
        enrich_delay = client.query(
            "SELECT quantiles(0.5, 0.99)(dateDiff('millisecond', posted_at, enriched_at) / 1000) FROM comments "
            f"WHERE source = '{LATENCY_SOURCE}'"
        ).result_rows[0][0]
    except Exception as exc:
        log(f"enrich delay query failed ({exc})")
        enrich_delay = [None, None]
    return {
        "produce_to_enriched_p50_seconds": round(enrich_delay[0], 3) if enrich_delay[0] is not None else None,
        "produce_to_enriched_p99_seconds": round(enrich_delay[1], 3) if enrich_delay[1] is not None else None,
        "offered_rate": rate,
        "seconds": seconds,
        "comments": count,
        "seen": len(latencies),
        "not_seen_by_deadline": missing,
        "drain_seconds_allowed": args.latency_drain,
        "p50_seconds": pct(0.50),
        "p99_seconds": pct(0.99),
        "max_seconds": round(latencies[-1], 3) if latencies and not missing else None,
        "poll_interval_seconds": 0.5,
        "p99_seconds_per_5s_of_offer": p99_by_5s,
    }


# -- the run -----------------------------------------------------------------------------------


def machine() -> dict[str, Any]:
    model = ""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    return {
        "nproc": os.cpu_count(),
        "cpu_model": model,
        "python": platform.python_version(),
        "load_average_at_start": [round(x, 2) for x in os.getloadavg()],
    }


def git_commit() -> str:
    """The checkout's commit, "+changes" when the package or benchmarks differ from it (a row must
    not credit a commit with code it does not hold)."""
    with contextlib.suppress(Exception):
        commit = subprocess.check_output(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, text=True).strip()
        changed = subprocess.run(["git", "diff", "--quiet", "HEAD", "--", "streams", "bench/pipeline.py"], cwd=ROOT)
        return commit + ("+changes" if changed.returncode == 1 else "")
    return "unknown"


def write_results(record: dict[str, Any]) -> None:
    OUT_DIR.mkdir(parents=True, exist_ok=True)
    out = OUT_DIR / "pipeline.json"
    runs = []
    if out.exists():
        with contextlib.suppress(ValueError):
            runs = json.loads(out.read_text()).get("runs", [])
    runs.append(record)
    out.write_text(json.dumps({"runs": runs}, indent=2) + "\n")
    log(f"wrote {out}")
    if record["ceiling"]:
        append_markdown(record)


def _fmt(value: Any, spec: str = ",.0f") -> str:
    return "—" if value is None else format(value, spec)


def append_markdown(r: dict[str, Any]) -> None:
    p, c, m = r["project"], r["ceiling"], r["machine"]
    lat = p.get("latency") or {}
    procs = p.get("processes", [])
    cpu = "; ".join(f"{x['role']}: {x['cpu_seconds_per_1000']:.2f}" for x in procs)
    rss = "; ".join(f"{x['role']}: {x['rss_peak_mb']:.0f}" for x in procs)
    latency = (
        f"{lat['offered_rate']:,.0f}/s x {lat['seconds']:.0f}s: p50 {_fmt(lat['p50_seconds'], '.2f')} s, "
        f"p99 {_fmt(lat['p99_seconds'], '.2f')} s"
        + (f" ({lat['not_seen_by_deadline']:,} not seen within {lat['drain_seconds_allowed']:.0f} s)"
           if lat.get("not_seen_by_deadline") else "")
        if lat
        else "not run"
    )  # fmt: skip
    ceiling = c.get("events_per_second_from_first_message") or c["events_per_second"]
    ratio = p["events_per_second"] / ceiling if p.get("events_per_second") else None
    times = f"{_fmt(p['seconds_to_ready'], '.1f')} / {_fmt(p['seconds_to_all_comments'], '.1f')} / " + (
        f"{p['seconds_to_all_windows']:.1f}"
        if p["complete"]
        else f"not within {p['seconds_to_all_windows']:.0f}"
        + (f" ({p['late_events']:,} late events)" if p.get("late_events") else "")
    )
    if p.get("broker_cpu_seconds_per_1000") is not None:
        cpu += f"; broker: {p['broker_cpu_seconds_per_1000']:.2f}"
    cpu += f"; raw ceiling: {c['cpu_seconds_per_1000']:.3f}"
    row = (
        f"| {r['date']} | {r['commit']} | {r['events']:,} | {r['partitions']} | {r['processes']} "
        f"| **{_fmt(p['events_per_second'])}** ({_fmt(p['events_per_second_from_first_row'])}) "
        f"| {_fmt(ceiling)} | {_fmt(ratio * 100 if ratio else None, '.2f')}{'%' if ratio else ''} | {times} "
        f"| {cpu} | {rss} | {latency} | {m['nproc']}x {m['cpu_model']}, load {m['load_average_at_start'][0]}"
        f"-{m.get('load_average_at_end', ['?'])[0]} |"
    )
    header = (
        "| date (UTC) | commit | events | partitions | processes | project events/s (from first row) "
        "| raw ceiling events/s | ratio | s to ready / all comments / all windows "
        "| CPU s per 1,000 events (per process, after ready) | peak RSS MB | produce-to-queryable latency | machine |\n"
        "|---|---|---:|---:|---:|---:|---:|---:|---|---|---|---|---|"
    )
    text = RESULTS.read_text(encoding="utf-8") if RESULTS.exists() else "# Benchmark results\n"
    if SECTION_START not in text:
        text = (
            text.rstrip("\n")
            + "\n\n"
            + SECTION_START
            + "\n"
            + PIPELINE_INTRO
            + "\n"
            + header
            + "\n"
            + SECTION_END
            + "\n"
        )
    before, rest = text.split(SECTION_START, 1)
    section, after = rest.split(SECTION_END, 1)
    # The row goes under the table's last row; notes written below the table stay below it.
    lines = section.split("\n")
    last = max(i for i, line in enumerate(lines) if line.startswith("|"))
    section = "\n".join([*lines[: last + 1], row, *lines[last + 1 :]])
    RESULTS.write_text(before + SECTION_START + section + SECTION_END + after, encoding="utf-8")
    log(f"appended a row to {RESULTS}")


PIPELINE_INTRO = """## Pipeline (bench/pipeline.py)

`make bench-pipeline` (variables: `N`, `PARTITIONS`, `PROCESSES`, `LATENCY_RATE`, `LATENCY_SECONDS`)
generates N seeded raw events (heavy-tailed threads and authors from `streams.windows.archive`,
reply trees, ~6% toxic and ~3% spam bodies of 0-400 words from the sample threads' sentences, ~2%
edits and ~1% deletions, arrival shuffled up to 4 minutes), pre-loads them into a fresh raw topic,
then measures in the same run: the **raw ceiling** (a plain consumer handing batches of 10,000
values to chDB's JSONEachRow parser, no processing; partitions assigned, timed from the first
message) and the **project** (`streams worker` on a fresh embedded database, from process start
until every comment is in `comments FINAL` with its edits and every thread and author window is in
`activity_windows`; windows idle after 3 s). events/s counts raw messages (creations, edits,
deletions) over the time from process start (in brackets: from the first landed row, i.e. without
start-up and group join). CPU seconds per 1,000 events exclude start-up (imports, models): on a
shared machine they are steadier than rates. Latency: comments produced at a fixed rate into the
running, caught-up worker, each one's produce time against the first 0.5 s poll that finds it in
`comments` (an upper bound). Each row is one run; bench/out/pipeline.json has every figure.
"""


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", "-n", type=int, default=10_000, help="raw events to pre-load")
    parser.add_argument("--partitions", type=int, default=4)
    parser.add_argument("--processes", type=int, default=1, help="`streams worker --processes N`")
    parser.add_argument("--seed", type=int, default=12)
    parser.add_argument("--latency-rate", type=float, default=2000.0, help="offered comments/s (0: skip)")
    parser.add_argument("--latency-seconds", type=float, default=60.0, help="how long to offer it (0: skip)")
    parser.add_argument("--latency-drain", type=float, default=120.0, help="extra time for the last ones to land")
    parser.add_argument("--timeout", type=float, default=0.0, help="seconds for the project phase (0: 300 + N/20)")
    parser.add_argument("--skip-ceiling", action="store_true")
    parser.add_argument("--keep", action="store_true", help="keep the run's directory (databases, logs)")
    parser.add_argument("--commit", default="", help="the code's commit, when not run from its git checkout")
    parser.add_argument("--no-results", action="store_true", help="do not append to bench/RESULTS.md")
    parser.add_argument(
        "--state-retention-hours",
        type=float,
        default=None,
        help="the worker's STREAMS_STATE_RETENTION_SECONDS, in hours (default: the worker's, 0: keep all)",
    )
    parser.add_argument(
        "--gc-young-threshold",
        type=int,
        default=None,
        help="the worker's STREAMS_GC_YOUNG_THRESHOLD (default: the worker's)",
    )
    args = parser.parse_args()
    if args.latency_rate <= 0:
        args.latency_seconds = 0
    args.timeout = args.timeout or 300 + args.events / 20

    stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
    workdir = OUT_DIR / f"run-{stamp}"
    workdir.mkdir(parents=True, exist_ok=True)
    port = os.environ.get("KAFKA_PORT", "9092")
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("STREAMS_")},
        "STREAMS_BROKER": os.environ.get("STREAMS_BROKER", f"127.0.0.1:{port}"),
        "STREAMS_TOPIC_PREFIX": f"bench{stamp.replace('-', '')}.",
        "STREAMS_CLICKHOUSE_DSN": f"chdb://{workdir / 'chdb'}",
        "STREAMS_DATA_DIR": str(workdir / "faust"),
        "STREAMS_WEB_PORT": str(free_port_block(args.processes + 1)),
        "STREAMS_PARTITIONS": str(args.partitions),
        "STREAMS_LOG_LEVEL": "warning",
        "STREAMS_WINDOW_IDLE_SECONDS": "3",
    }
    if args.state_retention_hours is not None:
        env["STREAMS_STATE_RETENTION_SECONDS"] = str(args.state_retention_hours * 3600)
    if args.gc_young_threshold is not None:
        env["STREAMS_GC_YOUNG_THRESHOLD"] = str(args.gc_young_threshold)
    settings = load_settings(env)
    record: dict[str, Any] = {
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M"),
        "commit": args.commit or git_commit(),
        "machine": machine(),
        "events": args.events,
        "partitions": args.partitions,
        "processes": args.processes,
        "seed": args.seed,
        "state_retention_hours": settings.state_retention_seconds / 3600,
        "gc_young_threshold": settings.gc_young_threshold,
    }
    try:
        log(f"generating {args.events:,} events (seed {args.seed})")
        t = time.perf_counter()
        work = generate(args.events, args.seed)
        total = len(work.messages)
        record["events"] = total
        record["workload"] = {k: v for k, v in work.__dict__.items() if k != "messages"} | {
            "bytes": sum(len(v) for _, v in work.messages)
        }
        log(
            f"{total:,} events ({work.comments:,} comments in {work.threads:,} threads, {work.edited} edits, "
            f"{work.deleted} deletions, {work.toxic} toxic, {work.spam} spam, mean {work.body_words_mean:.0f} words) "
            f"in {time.perf_counter() - t:.1f}s"
        )
        log(f"producing to {settings.topic(topics.RAW)} ({args.partitions} partitions) at {settings.broker}")
        record["produce_seconds"] = round(asyncio.run(produce(settings, work.messages)), 2)
        log(f"produced in {record['produce_seconds']:.1f}s")
        record["ceiling"] = None
        if not args.skip_ceiling:
            log("raw ceiling: plain consumer -> chDB JSONEachRow")
            record["ceiling"] = raw_ceiling(settings, total, workdir / "ceiling-chdb", timeout=args.timeout)
            log(f"raw ceiling: {record['ceiling']['events_per_second']:,.0f} events/s ({record['ceiling']['library']})")
        log(f"project: streams worker{' --processes ' + str(args.processes) if args.processes != 1 else ''}")
        record["project"] = run_project(env, settings, work, args, workdir)
        p = record["project"]
        log(
            f"project: {_fmt(p['events_per_second'])} events/s end to end "
            f"({_fmt(p['events_per_second_from_first_row'])} from the first row)"
        )
        record["machine"]["load_average_at_end"] = [round(x, 2) for x in os.getloadavg()]
        if p.get("latency"):
            lat = p["latency"]
            log(
                f"latency at {lat['offered_rate']:.0f}/s: p50 {lat['p50_seconds']} s, p99 {lat['p99_seconds']} s "
                f"(produce -> enriched: p50 {lat.get('produce_to_enriched_p50_seconds')} s, "
                f"p99 {lat.get('produce_to_enriched_p99_seconds')} s); "
                f"p99 per 5 s: {lat.get('p99_seconds_per_5s_of_offer')}; "
                "slow batches: "
                f"{lat.get('slow_batches_during_latency')}"
            )
        if args.no_results:
            (OUT_DIR / "pipeline-last.json").write_text(json.dumps(record, indent=2) + "\n")
        else:
            write_results(record)
        return 0 if p["complete"] else 1
    finally:
        if not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)
            try:
                log(f"deleted {asyncio.run(delete_topics(settings))} topics of this run")
            except Exception as exc:
                log(f"could not delete the run's topics ({exc})")


if __name__ == "__main__":
    sys.exit(main())
