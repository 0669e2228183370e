"""How long a worker started right after a SIGKILL of its predecessor waits for its partitions.

    KAFKA_PORT=9692 nice -n 10 .venv/bin/python bench/rejoin_wait.py [--runs 2] [--out bench/REJOIN.md]

Per configuration: start a worker (own topic prefix and database), wait until a comment lands,
SIGKILL it (or SIGTERM, for reference), start it again at once (same group, instance id, database,
web port) and time from the kill: its Faust starting (imports, migrations, model warm-up: slow on a
loaded machine, and overlapping the session timeout), its request to join the group waiting (from
its log), its partitions assigned (/health), and a comment fed after the kill landing in ClickHouse.
Real broker, real worker processes (the integration-test harness).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import NamedTuple

import msgspec

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from streams.demo import WorkerProcess
from streams.models import CommentEvent
from streams.sources.registry import SourceItem
from tests.integration.harness import Pipeline, ensure_broker

KEEP_LOGS = os.environ.get("REJOIN_KEEP_LOG", "")
CONFIGS: dict[str, dict[str, str]] = {
    "reference: SIGTERM (the worker leaves the group), session timeout 10 s": {
        "STREAMS_SESSION_TIMEOUT_SECONDS": "10",
        "_stop": "term",
    },
    "dynamic membership, session timeout 30 s (the old default)": {"STREAMS_SESSION_TIMEOUT_SECONDS": "30"},
    "dynamic membership, session timeout 10 s (the new default)": {"STREAMS_SESSION_TIMEOUT_SECONDS": "10"},
    "static membership (STREAMS_WORKER_INSTANCE_ID), session timeout 10 s": {
        "STREAMS_SESSION_TIMEOUT_SECONDS": "10",
        "STREAMS_WORKER_INSTANCE_ID": "bench-worker-1",
    },
}


def comment(n: int) -> SourceItem:
    event = CommentEvent(
        event_id=f"e-rejoin-{n}",
        event_type="comment.created",
        source="bench",
        thread_id="t-rejoin",
        thread_title="rejoin",
        comment_id=f"c-rejoin-{n}",
        author=f"author{n}",
        posted_at=datetime(2024, 1, 1, 12, 0, n, tzinfo=UTC),
        body=f"comment number {n}",
    )
    return SourceItem(key=event.thread_id, value=msgspec.json.encode(event))


class Run(NamedTuple):
    landed: float  # kill -> the comment fed after the kill is in ClickHouse
    assigned: float  # kill -> the new worker's /health lists partitions
    started: float  # kill -> the new worker's Faust starts (imports, migrations, model warm-up done)
    join: float  # in the new worker's log: from asking to join the group to being assigned


_STAMP = re.compile(r"^\[(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3})\]")


def log_time(log: str, marker: str) -> datetime:
    """Local time of the first worker log line containing `marker`."""
    line = next(line for line in log.splitlines() if marker in line)
    match = _STAMP.match(line)
    assert match, line
    return datetime.strptime(match.group(1), "%Y-%m-%d %H:%M:%S,%f")


def join_wait(log: str) -> float:
    """Seconds from the first "(Re-)joining group" to the first "Successfully synced group"."""
    return (log_time(log, "Successfully synced group") - log_time(log, "(Re-)joining group")).total_seconds()


def wait_count(p: Pipeline, expected: int, timeout: float) -> None:
    p.wait_until("SELECT count() FROM comments FINAL", lambda v: int(v) >= expected, timeout=timeout)


def one_run(broker: str, overrides: dict[str, str]) -> Run:
    with tempfile.TemporaryDirectory(prefix="rejoin-") as tmp:
        graceful = overrides.get("_stop") == "term"
        settings = {k: v for k, v in overrides.items() if not k.startswith("_")}
        p = Pipeline(Path(tmp), broker, STREAMS_LOG_LEVEL="info", **settings).start()
        log = Path(tmp) / "restarted.log"
        try:
            p.feed_items([comment(1)])
            wait_count(p, 1, 120)
            p.stop() if graceful else p.kill()
            killed_at, killed_wall = time.monotonic(), datetime.now()
            # The same worker restarted at once: same group, instance id, database and web port.
            p.worker = WorkerProcess(p.settings, log, env=p.env)
            p.worker.start()
            p.feed_items([comment(2)])
            assigned = None
            while time.monotonic() < killed_at + 240:
                if not p.worker.running():
                    raise RuntimeError(f"restarted worker died:\n{p.worker.tail(40)}")
                health = p.client.health()
                if health and health.get("assigned") and assigned is None:
                    assigned = time.monotonic() - killed_at
                try:
                    if int(p.scalar("SELECT count() FROM comments FINAL")) >= 2:
                        landed = time.monotonic() - killed_at
                        text = log.read_text(errors="replace")
                        if KEEP_LOGS:
                            shutil.copy(log, KEEP_LOGS)
                        started = (log_time(text, "[^Worker]: Starting") - killed_wall).total_seconds()
                        run = Run(landed, assigned or landed, started, join_wait(text))
                        print(json.dumps(run._asdict()), flush=True)
                        return run
                except Exception:  # its web server is not up yet
                    pass
                time.sleep(0.1)
            raise RuntimeError(f"comment 2 never landed:\n{p.worker.tail(40)}")
        finally:
            p.stop()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=2)
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--only", default="", help="run only configurations containing this text")
    args = parser.parse_args()
    broker = ensure_broker()
    results: dict[str, list[Run]] = {}
    for name, overrides in CONFIGS.items():
        if args.only and args.only not in name:
            continue
        results[name] = [one_run(broker, overrides) for _ in range(args.runs)]
    lines = [
        "| configuration | kill -> new worker's Faust starts (s) | its join waits (s) "
        "| kill -> partitions assigned (s) | kill -> next comment in ClickHouse (s) |",
        "|---|---|---|---|---|",
    ]
    for name, runs in results.items():

        def cell(values: list[float]) -> str:
            each = ", ".join(f"{v:.1f}" for v in values)
            return f"{statistics.median(values):.1f} ({each})" if len(values) > 1 else each

        lines.append(
            f"| {name} | {cell([r.started for r in runs])} | {cell([r.join for r in runs])} "
            f"| {cell([r.assigned for r in runs])} "
            f"| {cell([r.landed for r in runs])} |"
        )
    text = "\n".join(lines) + "\n"
    print(text)
    if args.out:
        args.out.write_text(text, encoding="utf-8")


if __name__ == "__main__":
    main()
