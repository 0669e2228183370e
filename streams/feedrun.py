"""`streams feed` and `streams parse` behind the CLI: options, progress and the Ctrl-C summary.

Kept out of cli.py so the command functions stay thin; the producing itself is streams.feed.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import (
    BarColumn,
    Progress,
    TaskID,
    TaskProgressColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from streams import topics
from streams.feed import FeedStats, dry_run, feed, follow_items, limited, looped
from streams.reconcile import ManifestRecorder, manifest_dir
from streams.richtext import escape
from streams.settings import Settings
from streams.sources.common import SourceParseError
from streams.sources.registry import SourceItem, SourceResult

#: Progress is redrawn every this many items (a redraw per item would cost more than producing).
_PROGRESS_EVERY = 500


class FeedFailed(Exception):
    """A feed could not go on; the message is for the operator."""


@dataclass
class FeedOptions:
    fmt: str = "auto"
    tz: str = "UTC"
    rate: float | None = None
    column_map: dict[str, str] = field(default_factory=dict)
    limit: int | None = None
    loop: bool = False
    dry_run: bool = False
    follow: bool = False


@dataclass
class FeedTotals:
    files: int = 0
    read: int = 0
    bad: int = 0
    sent: int = 0
    acked: int = 0
    #: Records too large for Kafka, sent to the dead-letter topic by the feeder itself.
    dead_lettered: int = 0
    seconds: float = 0.0
    interrupted: bool = False
    per_file: list[tuple[str, str, FeedStats]] = field(default_factory=list)


class _Tracker:
    """Advances one progress task: by bytes when the file's size is known, else by items."""

    def __init__(
        self, progress: Progress, task: TaskID, result: SourceResult | None, recorder: ManifestRecorder | None
    ) -> None:
        self.recorder = recorder
        self.bad_reasons: list[str] = []
        self.progress = progress
        self.task = task
        self.file = result.file if result is not None else None
        self.count = 0
        self.started = time.perf_counter()

    def __call__(self, item: SourceItem) -> None:
        self.count += 1
        if self.recorder is not None:
            self.recorder.record(item.value, item.bad)
        if item.bad and len(self.bad_reasons) < 20:
            self.bad_reasons.append(item.reason or "unparseable")
        if self.count % _PROGRESS_EVERY == 0:
            self.refresh()

    def refresh(self) -> None:
        elapsed = max(time.perf_counter() - self.started, 1e-9)
        fields: dict[str, Any] = {"events": self.count, "rate": self.count / elapsed}
        if self.file is not None:
            self.progress.update(self.task, completed=self.file.bytes_read, **fields)
        else:
            self.progress.update(self.task, completed=self.count, **fields)


def make_progress(console: Console) -> Progress:
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        TaskProgressColumn(),
        TextColumn("{task.fields[events]:>9,} events"),
        TextColumn("{task.fields[rate]:>8,.0f}/s"),
        TimeElapsedColumn(),
        TextColumn("ETA"),
        TimeRemainingColumn(),
        console=console,
    )


def describe(result: SourceResult, path: Path) -> str | None:
    """What `--format auto` chose and why, for stderr (None when the format was given)."""
    if result.detected is None:
        return None
    return f"{path}: format {result.format} ({result.detected})"


def _items(result: SourceResult) -> Iterator[SourceItem]:
    try:
        yield from result
    except SourceParseError as exc:
        raise FeedFailed(str(exc)) from exc


def run_feed(
    settings: Settings,
    files: list[Path],
    options: FeedOptions,
    *,
    open_source: Callable[[Path], SourceResult],
    console: Console,
) -> FeedTotals:
    """Feed `files` one after another; Ctrl-C stops and the totals say what the broker acknowledged."""
    totals = FeedTotals()
    remaining = options.limit
    with make_progress(console) as progress:
        for path in files:
            if remaining is not None and remaining <= 0:
                break
            stats = FeedStats()
            first = None if options.follow else open_source(path)
            if first is not None and (note := describe(first, path)):
                console.print(f"[dim]{escape(note)}[/]")
            total = _known_total(first)
            task = progress.add_task(path.name, total=total, events=0, rate=0.0)
            recorder = None
            if not options.dry_run:
                recorder = ManifestRecorder.start(path, first.format if first else "jsonl", settings.topic(topics.RAW))
            tracker = _Tracker(progress, task, first, recorder)
            items = _source_items(path, first, options, open_source, tracker)
            items = limited(items, remaining)
            started = time.perf_counter()
            try:
                if options.dry_run:
                    stats = dry_run(items, on_item=tracker)
                else:
                    asyncio.run(feed(settings, items, rate=options.rate, on_sent=tracker, stats=stats))
            except KeyboardInterrupt:
                totals.interrupted = True
            except FeedFailed:
                raise
            except Exception as exc:
                raise FeedFailed(f"feeding {path} to {settings.broker} failed: {exc}") from exc
            finally:
                stats.seconds = stats.seconds or time.perf_counter() - started
                tracker.refresh()
                if total is not None and not totals.interrupted and first is not None and first.file is not None:
                    progress.update(task, completed=total)
            if recorder is not None:
                recorder.write(manifest_dir(settings), stats.offsets, stats.acked, totals.interrupted)
            for reason in tracker.bad_reasons:
                console.print(f"[yellow]bad record (sent on to be dead-lettered):[/] {escape(reason)}")
            totals.files += 1
            totals.read += stats.sent
            totals.bad += stats.bad
            totals.sent += 0 if options.dry_run else stats.sent
            totals.acked += stats.acked + stats.acked_dead_letters
            totals.dead_lettered += stats.dead_lettered
            totals.seconds += stats.seconds
            totals.per_file.append((str(path), first.format if first else "jsonl", stats))
            if first is not None:
                for warning in first.warnings[:50]:
                    console.print(f"[yellow]warning:[/] {escape(warning)}")
                if len(first.warnings) > 50:
                    console.print(f"[yellow]... and {len(first.warnings) - 50} more warnings[/]")
            if remaining is not None:
                remaining -= stats.sent
            if totals.interrupted:
                break
    return totals


def _known_total(result: SourceResult | None) -> int | None:
    if result is None:
        return None
    if result.file is not None:
        return result.file.size
    if result.dump is not None:
        return len(result.dump.comments)
    return None


def _source_items(
    path: Path,
    first: SourceResult | None,
    options: FeedOptions,
    open_source: Callable[[Path], SourceResult],
    tracker: _Tracker,
) -> Iterable[SourceItem | None]:
    if options.follow:
        return follow_items(path)
    assert first is not None
    if not options.loop:
        return _items(first)
    results = iter([first])

    def next_round() -> Iterator[SourceItem]:
        result = next(results, None) or open_source(path)
        tracker.file = result.file
        return _items(result)

    return looped(next_round, None)
