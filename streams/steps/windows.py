"""The windows steps: enriched rows -> deliveries to the windows partitions (the fan-out, run by
enrich), and deliveries -> window rows, late events and alerts (the engine, run by windows).

The fan-out puts every item of an author / category / parent author / text fingerprint in one
windows.input partition (crc32 of "kind:key" modulo the partition count), so those windows are
exact however many workers run. Progress reports (how far in event time each comments.valid
partition has sent) and wall-clock ticks travel as deliveries without an item.
"""

from __future__ import annotations

import zlib
from collections import defaultdict
from collections.abc import Iterable
from pathlib import Path

import msgspec

from streams.models import EnrichedComment
from streams.settings import Settings
from streams.windows.detectors import load_detector_config
from streams.windows.engine import EngineOutput, WindowConfig, WindowEngine, WindowInput, route, route_key


class WindowDelivery(msgspec.Struct, frozen=True, kw_only=True):
    """One entry of a windows.input envelope: an item from upstream partition `source` for each of
    its (kind, key) windows owned by this partition (`routes`), and out of those it left (`leaving`);
    or, without an item, a progress report (`source` has sent everything up to `progress_ms`) or a
    wall-clock tick (no source). One entry per item and partition, not per window: an item is in
    ~6 windows, and each copy cost an encode and a decode."""

    #: One window only (`kind`, `key`, `remove`): how envelopes were written before `routes`; still read.
    kind: str = ""
    key: str = ""
    item: WindowInput | None = None
    #: Take the item out of this window (deleted, or an edit moved it off this route).
    remove: bool = False
    routes: tuple[tuple[str, str], ...] = ()
    #: Windows to take the item out of (deleted, or an edit moved it off these routes).
    leaving: tuple[tuple[str, str], ...] = ()
    source: str = ""
    progress_ms: int = 0
    #: With a progress report: `source` has been consumed to its end (nothing more to send for now).
    caught_up: bool = False
    #: With a progress report: the sender's wall time, and when it last saw `source` advance or
    #: still had some of it to read (0 in envelopes written before: timed by the windows' clock).
    clock_ms: int = 0
    fresh_ms: int = 0
    tick_ms: int = 0


def window_config(settings: Settings) -> WindowConfig:
    """The window engine's configuration from the worker's settings."""
    path = Path(settings.moderation_file) if settings.moderation_file else None
    idle_ms = int(settings.window_idle_seconds * 1000)
    return WindowConfig(
        allowed_lateness_ms=int(settings.window_lateness_seconds * 1000),
        retention_ms=int(settings.window_retention_seconds * 1000),
        idle_timeout_ms=idle_ms,
        # A source lagging behind (consumed more slowly) must hold windows back for a good while.
        source_idle_ms=max(4 * idle_ms, 120_000),
        # Every comments.valid partition reports progress to every windows partition.
        upstream_sources=settings.partitions,
        detectors=load_detector_config(path),
    )


def window_input(comment: EnrichedComment) -> WindowInput:
    e = comment.event
    return WindowInput(
        comment_id=e.comment_id,
        thread_id=e.thread_id,
        author=e.author,
        parent_author=e.parent_author,
        posted_at_ms=int(e.posted_at.timestamp() * 1000),
        flags=list(comment.flags.flags),
        toxicity=comment.flags.scores.get("toxicity", 0.0),
        depth=comment.depth,
        fingerprint=comment.fingerprint,
        deleted=e.event_type == "comment.deleted",
    )


def windows_partition(kind: str, key: str, partitions: int) -> int:
    """The windows.input partition that owns window (kind, key): stable across processes and restarts."""
    return zlib.crc32(route_key(kind, key).encode()) % partitions


class FanOut:
    """One enrich batch's deliveries to the windows, grouped per windows.input partition."""

    def __init__(self, partitions: int) -> None:
        self.partitions = partitions
        self.by_partition: dict[int, list[WindowDelivery]] = defaultdict(list)

    def add(self, comment: EnrichedComment, source: str, previous_routes: list[list[str]]) -> list[list[str]]:
        """Deliver one comment to every (kind, key) window it belongs to, and take it out of the
        windows its previous version was in but this one is not; return the routes it is in now."""
        item = window_input(comment)
        routes = [] if item.deleted else [[kind, key] for kind, key in route(item)]
        leaving = [r for r in previous_routes if r not in routes]
        if item.deleted:
            leaving += [[kind, key] for kind, key in route(item) if [kind, key] not in leaving]
        per_partition: dict[int, tuple[list[tuple[str, str]], list[tuple[str, str]]]] = {}
        for targets, index in ((routes, 0), (leaving, 1)):
            for kind, key in targets:
                per_partition.setdefault(windows_partition(kind, key, self.partitions), ([], []))[index].append(
                    (kind, key)
                )
        for partition, (joining, left) in per_partition.items():
            self.by_partition[partition].append(
                WindowDelivery(item=item, source=source, routes=tuple(joining), leaving=tuple(left))
            )
        return routes

    def add_progress(
        self, progress: dict[str, int], caught_up: set[str], advanced_at: dict[str, int], now_ms: int
    ) -> None:
        """Tell every windows partition how far (in event time) each upstream source has sent.

        Upstream partitions are consumed at different speeds; a windows partition fed by several
        of them must not let the fastest one close windows the slower ones still have comments for.
        Each report carries this sender's clock (`now_ms`) and when the source was last fresh: when
        its event time last advanced (`advanced_at`), or now while it is not read to its end (its
        items are on their way, however old). The windows time idleness by that clock, not by when
        they happen to read the report. Added last, so each partition reads them after the batch's
        deliveries.
        """
        for source, event_ms in progress.items():
            done = source in caught_up
            report = WindowDelivery(
                source=source,
                progress_ms=event_ms,
                caught_up=done,
                clock_ms=now_ms,
                fresh_ms=advanced_at.get(source, now_ms) if done else now_ms,
            )
            for partition in range(self.partitions):
                self.by_partition[partition].append(report)


def apply(
    engine: WindowEngine, partition: int, deliveries: Iterable[WindowDelivery], now_ms: int, out: EngineOutput
) -> int:
    """Apply one windows.input partition's deliveries, in order, adding what they emit to `out`;
    return how many window updates they carried."""
    items = 0
    for delivery in deliveries:
        item = delivery.item
        if item is not None:
            source = delivery.source or None
            if delivery.routes or delivery.leaving:
                targets = [(kind, key, False) for kind, key in delivery.routes]
                targets += [(kind, key, True) for kind, key in delivery.leaving]
            else:
                targets = [(delivery.kind, delivery.key, delivery.remove)]
            for kind, key, remove in targets:
                items += 1
                out.extend(engine.process(partition, kind, key, item, now_ms, source, remove=remove))
        elif delivery.source:
            out.extend(
                engine.progress(
                    partition,
                    delivery.source,
                    delivery.progress_ms,
                    now_ms,
                    caught_up=delivery.caught_up,
                    clock_ms=delivery.clock_ms,
                    fresh_ms=delivery.fresh_ms,
                )
            )
        else:
            out.extend(engine.tick(partition, now_ms))
    return items
