"""`streams demo`: broker + worker + embedded ClickHouse, the sample threads fed through, a summary.

The worker process owns the embedded database, so this process only talks to it over HTTP (/sql).
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table
from rich.text import Text

from streams import PROJECT_ROOT
from streams.feed import feed
from streams.richtext import data_table, escape
from streams.settings import Settings
from streams.sources.registry import parse_source
from streams.worker_client import WorkerClient

KAFKA_SCRIPT = PROJECT_ROOT / "deploy" / "kafka" / "kafka.sh"


class DemoError(RuntimeError):
    pass


def broker_answers(settings: Settings) -> bool:
    host, _, port = settings.bootstrap_servers[0].rpartition(":")
    try:
        with socket.create_connection((host or "127.0.0.1", int(port)), timeout=1.0):
            return True
    except OSError:
        return False


def kafka_script_env(settings: Settings, environ: Mapping[str, str]) -> dict[str, str]:
    """kafka.sh's environment for the broker the demo's worker uses: on the port of STREAMS_BROKER,
    whatever KAFKA_PORT says (a broker on another port would leave the worker without one)."""
    return {**environ, "KAFKA_PORT": settings.bootstrap_servers[0].rsplit(":", 1)[-1]}


def run_kafka_script(action: str, settings: Settings) -> None:
    env = kafka_script_env(settings, os.environ)
    if subprocess.call(["bash", str(KAFKA_SCRIPT), action], env=env) != 0:
        raise DemoError(f"kafka.sh {action} failed (see deploy/kafka/run/)")


def wait_for(check: Callable[[], bool], *, timeout: float, what: str, interval: float = 0.5) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(interval)
    raise DemoError(f"timed out after {timeout:.0f}s waiting for {what}")


class WorkerProcess:
    """`streams worker` as a child process, logging to a file."""

    def __init__(
        self, settings: Settings, log_path: Path, env: dict[str, str] | None = None, args: tuple[str, ...] = ()
    ) -> None:
        self.settings = settings
        self.log_path = log_path
        self.env = env
        self.args = args  # more `streams worker` options, like ("--processes", "2")
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        log = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "streams.cli", "worker", *self.args],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=self.env or dict(os.environ),
            start_new_session=True,
        )

    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def wait_ready(self, client: WorkerClient, timeout: float = 120.0) -> None:
        def ready() -> bool:
            if not self.running():
                raise DemoError(f"the worker exited early; see {self.log_path}:\n{self.tail()}")
            if not client.alive():
                return False
            try:
                client.query("SELECT count() FROM comments")
            except Exception:
                return False
            return True

        wait_for(ready, timeout=timeout, what="the worker to answer")

    def stop(self, timeout: float = 60.0) -> int | None:
        if self.proc is None or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else None
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            return self.proc.wait()

    def tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


def summary_tables(client: Any, thread_ids: list[str]) -> list[Table | Text]:
    ids = ", ".join(f"'{t}'" for t in thread_ids)
    out: list[Table | Text] = []

    def table(title: str, sql: str) -> None:
        result = client.query(sql)
        if not result.result_rows:
            out.append(Text(f"{title}: none\n", style="italic"))
            return
        # Cells are user content (bodies, names, reasons): printed literally, never as markup.
        out.append(data_table(result.column_names, result.result_rows, null="", title=title, title_justify="left"))

    table(
        "Comments per thread",
        "SELECT thread_id, any(thread_title) AS title, count() AS comments, uniqExact(author) AS authors, "
        "max(depth) AS max_depth, countIf(length(flags) > 0) AS flagged, "
        "min(posted_at) AS first, max(posted_at) AS last "
        f"FROM comments FINAL WHERE thread_id IN ({ids}) GROUP BY thread_id ORDER BY comments DESC",
    )
    table(
        "Comments (thread order by time)",
        "SELECT posted_at, author, ifNull(parent_author, '') AS replying_to, depth, body_length AS chars, "
        "language, arrayStringConcat(flags, ',') AS flags "
        f"FROM comments FINAL WHERE thread_id IN ({ids}) ORDER BY thread_id, posted_at",
    )
    table(
        "Reply depth",
        f"SELECT depth, count() AS comments FROM comments FINAL WHERE thread_id IN ({ids}) "
        "GROUP BY depth ORDER BY depth",
    )
    table(
        "Authors",
        "SELECT author, count() AS comments, max(author_flagged_count) AS flagged, "
        f"max(author_thread_count) AS threads FROM comments FINAL WHERE thread_id IN ({ids}) "
        "GROUP BY author ORDER BY comments DESC, author",
    )
    table(
        "Flags (score, reasons)",
        "SELECT author, flag, round(toFloat64(scores[flag]), 2) AS score, "
        "arrayStringConcat(reasons[flag], ', ') AS reasons "
        f"FROM comments FINAL ARRAY JOIN flags AS flag WHERE thread_id IN ({ids}) ORDER BY posted_at, flag",
    )
    table(
        "Event-time windows emitted (latest versions)",
        "SELECT kind, count() AS windows, sum(comments) AS comments, max(version) AS max_version "
        f"FROM activity_windows FINAL WHERE key IN ({ids}) OR kind IN ('author_1m', 'category_1m') "
        "GROUP BY kind ORDER BY kind",
    )
    table(
        "Dead letters",
        "SELECT stage, reason_code, count() AS messages, any(reason) AS example FROM dead_letters FINAL "
        "GROUP BY stage, reason_code ORDER BY messages DESC",
    )
    return out


def run_demo(settings: Settings, *, keep_running: bool, console: Console, files: list[Path]) -> None:
    started = time.monotonic()
    started_broker = False
    if not broker_answers(settings):
        console.print(f"starting the local Kafka broker ({settings.broker}) ...")
        run_kafka_script("start", settings)
        started_broker = True
    log_path = Path(settings.data_dir).parent / "worker.log"
    # A dump is replayed in one go: let idle partitions flush their windows after 3 s, not 30.
    env = {"STREAMS_WINDOW_IDLE_SECONDS": "3", **os.environ}
    worker = WorkerProcess(settings, log_path, env=env)
    client = WorkerClient(settings)
    if client.alive():
        raise DemoError(f"a worker already answers at {settings.worker_url}; stop it first")
    console.print(f"starting the worker (log: {log_path}) ...")
    worker.start()
    try:
        worker.wait_ready(client)
        sources = [parse_source(path, fmt="auto", tz="UTC") for path in files]
        thread_ids = [s.dump.thread_id for s in sources if s.dump]
        expected = sum(len(s.dump.comments) for s in sources if s.dump)
        for path, source in zip(files, sources, strict=True):
            stats = asyncio.run(feed(settings, source))
            console.print(f"fed {escape(path.name)}: {stats.sent} comments in {stats.seconds:.2f}s")
        ids = ", ".join(f"'{t}'" for t in thread_ids)

        def landed() -> bool:
            rows = client.query(f"SELECT count() FROM comments FINAL WHERE thread_id IN ({ids})").result_rows
            return int(rows[0][0]) >= expected

        wait_for(landed, timeout=120, what=f"{expected} comments to land in ClickHouse")

        def windows_out() -> bool:
            # A replayed dump ends at once: its last windows close when the partitions go idle.
            rows = client.query(
                f"SELECT uniqExact(toStartOfMinute(posted_at)) = (SELECT count() FROM activity_windows FINAL "
                f"WHERE kind = 'thread_1m' AND key IN ({ids})) FROM comments FINAL WHERE thread_id IN ({ids})"
            ).result_rows
            return bool(rows[0][0])

        wait_for(windows_out, timeout=90, what="the event-time windows of the sample threads")
        for t in summary_tables(client, thread_ids):
            console.print(t)
        console.print(
            f"[bold green]{expected} comments from {len(thread_ids)} thread(s) landed[/] "
            f'in {time.monotonic() - started:.1f}s. Query them: streams sql "SELECT ... FROM comments FINAL"'
        )
        if keep_running:
            console.print(f"worker running at {settings.worker_url} (/metrics, /sql); Ctrl-C stops it")
            try:
                while worker.running():
                    time.sleep(1)
            except KeyboardInterrupt:
                pass
    finally:
        code = worker.stop()
        console.print(f"worker stopped (exit {code})")
        if started_broker:
            run_kafka_script("stop", settings)
