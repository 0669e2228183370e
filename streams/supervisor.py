"""`streams worker --processes N`: N worker processes of one consumer group on this machine, under one
supervisor that forwards SIGTERM/SIGINT to them and restarts a child that crashed.

Roles (STREAMS_WORKER_ROLE of each child, see streams/agents/__init__.py):

- With an embedded database (chdb://), only one process may open its directory. N children run the
  `processing` role (ingest, enrich, authors, windows: the processing consumer group, which is the
  app id as before) and never open ClickHouse; one more child, the `sink` role, owns the database:
  it runs the ClickHouse sinks (comments.enriched, comments.dlq, activity.windows, alerts,
  windows.late) and serves /sql. The sink is a Faust app of its own (app id + "-sink", so a consumer
  group of its own): the processing group's partition assignment is then the same whichever
  process owns the database, and nothing relies on Faust's assignor handling members with different
  subscriptions. Processing children write to Kafka only; the sink commits after ClickHouse
  acknowledged, so a crash of any child loses nothing (at-least-once into idempotent tables).
- With a ClickHouse server (http(s)://), any process may insert: N children run `all`, one group.
- `--second-stage` adds one child in the `second-stage` role (the heavier moderation model,
  streams/agents/second_stage.py; a consumer group of its own, so it never holds the others up);
  `--second-stage` with one process runs the `all` worker beside it.

Child i serves HTTP on STREAMS_WEB_PORT + i and has a Faust data directory of its own. The sink (or
child 0) keeps the base port, so `streams sql` and /health work as with one process.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType

from streams.clickhouse.client import is_embedded
from streams.settings import Settings

log = logging.getLogger("streams.supervisor")

#: A child that ran at least this long before it exited starts again after the shortest delay.
HEALTHY_RUN_SECONDS = 60.0
FIRST_RESTART_DELAY = 1.0
MAX_RESTART_DELAY = 30.0
#: Give up (stop everything, exit 1) after this many exits in a row, each sooner than HEALTHY_RUN_SECONDS
#: after its start: a configuration error, not a crash, which restarting will not cure.
MAX_QUICK_EXITS = 5
STOP_TIMEOUT_SECONDS = 60.0


class PlanError(ValueError):
    """The requested processes cannot run as asked."""


@dataclass(frozen=True)
class ChildSpec:
    index: int
    role: str
    web_port: int
    data_dir: str

    @property
    def name(self) -> str:
        return f"worker {self.index} ({self.role})"

    def environ(self, base: Mapping[str, str]) -> dict[str, str]:
        return {
            **base,
            "STREAMS_WORKER_ROLE": self.role,
            "STREAMS_WEB_PORT": str(self.web_port),
            "STREAMS_DATA_DIR": self.data_dir,
        }


def plan_processes(settings: Settings, processes: int, *, second_stage: bool = False) -> list[ChildSpec]:
    """The children of `streams worker --processes N [--second-stage]` (see the module doc)."""
    specs = _pipeline_processes(settings, processes)
    if second_stage:
        index = len(specs)
        data = Path(settings.data_dir)
        specs.append(ChildSpec(index, "second-stage", settings.web_port + index, str(data / "second-stage")))
    return specs


def _pipeline_processes(settings: Settings, processes: int) -> list[ChildSpec]:
    if processes < 1:
        raise PlanError("--processes must be >= 1")
    if settings.worker_role != "all":
        raise PlanError(f"--processes assigns the roles itself: unset STREAMS_WORKER_ROLE (={settings.worker_role})")
    if processes > settings.partitions:
        idle = processes - settings.partitions
        raise PlanError(
            f"--processes {processes} is more than the {settings.partitions} partitions of the topics "
            f"(STREAMS_PARTITIONS): a partition is read by one process of a group, so {idle} "
            f"process(es) would sit idle. Use --processes {settings.partitions} or fewer, or more partitions "
            "(topics are created with STREAMS_PARTITIONS; existing topics keep theirs)"
        )
    data = Path(settings.data_dir)
    if processes == 1:  # `--second-stage` alone: the worker as it runs unsupervised, beside it
        return [ChildSpec(0, "all", settings.web_port, str(data))]
    if is_embedded(settings.clickhouse_dsn):
        sink = ChildSpec(0, "sink", settings.web_port, str(data / "sink"))
        return [sink] + [
            ChildSpec(i, "processing", settings.web_port + i, str(data / f"process-{i}"))
            for i in range(1, processes + 1)
        ]
    return [ChildSpec(i, "all", settings.web_port + i, str(data / f"process-{i}")) for i in range(processes)]


def restart_delay(quick_exits: int) -> float:
    """Seconds before a restart, doubling with each exit in a row that came soon after a start."""
    return min(MAX_RESTART_DELAY, FIRST_RESTART_DELAY * 2.0 ** max(0, quick_exits - 1))


def _die_with_parent() -> None:  # pragma: no cover - runs in the child between fork and exec
    """Linux: the child is killed if the supervisor dies (SIGKILL leaves it no chance to forward)."""
    with contextlib.suppress(Exception):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


@dataclass
class Child:
    spec: ChildSpec
    proc: subprocess.Popen[bytes] | None = None
    started_at: float = 0.0
    restarts: int = 0
    quick_exits: int = 0
    restart_at: float | None = None


@dataclass
class Supervisor:
    specs: list[ChildSpec]
    args: list[str] = field(default_factory=list)  # passed on to each child's `streams worker`
    environ: Mapping[str, str] = field(default_factory=lambda: dict(os.environ))
    stop_timeout: float = STOP_TIMEOUT_SECONDS
    children: list[Child] = field(init=False)
    _stop_signal: int | None = field(init=False, default=None)

    def __post_init__(self) -> None:
        self.children = [Child(spec) for spec in self.specs]

    def _start(self, child: Child) -> None:
        Path(child.spec.data_dir).mkdir(parents=True, exist_ok=True)  # Faust makes only the last level
        child.proc = subprocess.Popen(
            [sys.executable, "-m", "streams.cli", "worker", *self.args],
            env=child.spec.environ(self.environ),
            # Its own session: a terminal's Ctrl-C reaches the supervisor only, which forwards it once.
            start_new_session=True,
            preexec_fn=_die_with_parent if sys.platform.startswith("linux") else None,
        )
        child.started_at = time.monotonic()
        child.restart_at = None
        log.info("started %s: pid %d, http port %d", child.spec.name, child.proc.pid, child.spec.web_port)

    def _on_signal(self, signum: int, _frame: FrameType | None) -> None:
        self._stop_signal = signum

    def run(self) -> int:
        """Run until SIGTERM/SIGINT (forwarded to every child; exit 0) or a child that keeps failing (exit 1)."""
        previous = {s: signal.signal(s, self._on_signal) for s in (signal.SIGTERM, signal.SIGINT)}
        try:
            for child in self.children:
                self._start(child)
            failed = self._watch()
            self._stop_all(self._stop_signal or signal.SIGTERM)
            return 1 if failed else 0
        finally:
            for s, handler in previous.items():
                signal.signal(s, handler)

    def _watch(self) -> bool:
        """Restart children that exit; True when one exits too often in a row to go on."""
        while self._stop_signal is None:
            now = time.monotonic()
            for child in self.children:
                if child.restart_at is not None:
                    if now >= child.restart_at:
                        self._start(child)
                    continue
                assert child.proc is not None
                code = child.proc.poll()
                if code is None or self._stop_signal is not None:
                    continue
                ran = now - child.started_at
                child.quick_exits = child.quick_exits + 1 if ran < HEALTHY_RUN_SECONDS else 1
                if child.quick_exits > MAX_QUICK_EXITS:
                    log.error(
                        "%s %s, %d times in a row, each within %.0fs of its start: giving up",
                        child.spec.name,
                        describe_exit(code),
                        child.quick_exits,
                        HEALTHY_RUN_SECONDS,
                    )
                    return True
                delay = restart_delay(child.quick_exits)
                child.restarts += 1
                child.restart_at = now + delay
                log.warning(
                    "%s (pid %d) %s after %.1fs; restarting in %.1fs (restart #%d)",
                    child.spec.name,
                    child.proc.pid,
                    describe_exit(code),
                    ran,
                    delay,
                    child.restarts,
                )
            time.sleep(0.2)
        log.info(
            "received %s: stopping %d worker processes", signal.Signals(self._stop_signal).name, len(self.children)
        )
        return False

    def _stop_all(self, signum: int) -> None:
        running = [c.proc for c in self.children if c.proc is not None and c.proc.poll() is None]
        for proc in running:
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(signum)
        deadline = time.monotonic() + self.stop_timeout
        for proc in running:
            try:
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                log.warning("pid %d did not stop within %.0fs: killing it", proc.pid, self.stop_timeout)
                proc.kill()
                proc.wait()


def describe_exit(code: int) -> str:
    if code < 0:
        with contextlib.suppress(ValueError):
            return f"was killed by {signal.Signals(-code).name}"
        return f"was killed by signal {-code}"
    return f"exited with code {code}"
