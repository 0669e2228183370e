"""What goes into and out of the window engine, and where an item must be delivered.

`WindowInput` in; `WindowRow`, `LateEvent` and alerts out (`EngineOutput`); `WindowConfig` for the
timing; `route` / `route_key` for re-keying the input topic by (kind, key) (see "Routing" in
`streams.windows.engine`).
"""

from __future__ import annotations

from datetime import datetime

import msgspec

from streams.windows.detectors import Alert, DetectorConfig
from streams.windows.engine.kinds import (
    AUTHOR_1M,
    CATEGORY_1M,
    KINDS,
    MINUTE_MS,
    PILE_ON_KIND,
    SPAM_WAVE_KIND,
    THREAD_1M,
    THREAD_TREND_10M,
)

# gc=False: these structs hold only plain values, so they can never be part of a reference cycle;
# untracked, they cost the cyclic GC nothing when a consumer holds many of them.


class WindowInput(msgspec.Struct, frozen=True, kw_only=True, gc=False):
    """One comment as the window engine sees it (``posted_at_ms``: event time, epoch ms UTC)."""

    comment_id: str
    thread_id: str
    author: str
    parent_author: str | None = None
    posted_at_ms: int
    flags: list[str] = []
    toxicity: float = 0.0
    depth: int = 0
    fingerprint: str = ""
    #: The comment was deleted: it leaves every window (see "Edits and deletions").
    deleted: bool = False


class WindowRow(msgspec.Struct, kw_only=True, gc=False):
    """One ``activity_windows`` row (field order = column order)."""

    kind: str
    key: str
    window_start: datetime
    window_end: datetime
    comments: int
    distinct_authors: int
    flagged_comments: int
    flagged: dict[str, int]
    mean_toxicity: float
    max_depth: int
    velocity: float
    acceleration: float
    version: int
    emitted_at: datetime


class LateEvent(msgspec.Struct, kw_only=True, gc=False):
    """One ``late_events`` row: an item that arrived after its windows of ``window_kind`` closed for good."""

    comment_id: str
    thread_id: str
    author: str
    posted_at: datetime
    watermark: datetime
    window_kind: str
    received_at: datetime


class EngineOutput(msgspec.Struct, kw_only=True):
    windows: list[WindowRow] = []
    late: list[LateEvent] = []
    alerts: list[Alert] = []

    def extend(self, other: EngineOutput) -> None:
        self.windows.extend(other.windows)
        self.late.extend(other.late)
        self.alerts.extend(other.alerts)

    def __bool__(self) -> bool:
        return bool(self.windows or self.late or self.alerts)


class WindowConfig(msgspec.Struct, frozen=True, kw_only=True):
    """Engine timing. ``retention_ms`` is measured from a window's end to the watermark."""

    allowed_lateness_ms: int = 5 * MINUTE_MS
    retention_ms: int = 60 * MINUTE_MS
    idle_timeout_ms: int = 30_000
    #: An upstream source whose event time has not advanced for this long no longer holds the
    #: watermark back (it went quiet; a live stream's sources do not all carry traffic).
    source_idle_ms: int = 120_000
    #: How many upstream sources report progress (0: unknown). Until that many have been heard on a
    #: partition, its watermark stays put for up to ``source_idle_ms`` after this instance first saw
    #: the partition: a source not read yet (a backlog after a restart) may hold the oldest items.
    upstream_sources: int = 0
    detectors: DetectorConfig = msgspec.field(default_factory=DetectorConfig)

    def __post_init__(self) -> None:
        if self.allowed_lateness_ms < 0 or self.retention_ms < 0:
            raise ValueError("allowed_lateness_ms and retention_ms must be >= 0")
        if self.idle_timeout_ms <= 0:
            raise ValueError("idle_timeout_ms must be > 0")


def route(item: WindowInput) -> list[tuple[str, str]]:
    """Every ``(kind, key)`` an item must be delivered to (deterministic order).

    pile_on gets replies to someone else only (a self-reply cannot be a pile-on); spam_wave gets
    items that have a fingerprint. author_flood rides on author_1m, toxicity_spike on thread_1m.
    """
    pairs = [(THREAD_1M, item.thread_id), (AUTHOR_1M, item.author), (THREAD_TREND_10M, item.thread_id)]
    pairs.extend((CATEGORY_1M, category) for category in sorted(set(item.flags)))
    if item.parent_author and item.parent_author != item.author:
        pairs.append((PILE_ON_KIND, item.parent_author))
    if item.fingerprint:
        pairs.append((SPAM_WAVE_KIND, item.fingerprint))
    return pairs


def route_key(kind: str, key: str) -> str:
    """Message key on the re-keyed topic; one (kind, key) always lands in one partition."""
    return f"{kind}:{key}"


def parse_route_key(value: str) -> tuple[str, str]:
    kind, sep, key = value.partition(":")  # kinds never contain ':', keys may
    if not sep or kind not in KINDS:
        raise ValueError(f"not a window route key: {value!r}")
    return kind, key


def _route_ok(kind: str, key: str, item: WindowInput) -> bool:
    if kind in (THREAD_1M, THREAD_TREND_10M):
        return key == item.thread_id
    if kind == AUTHOR_1M:
        return key == item.author
    if kind == CATEGORY_1M:
        return key in item.flags
    if kind == PILE_ON_KIND:
        return key == item.parent_author and key != item.author
    return bool(item.fingerprint) and key == item.fingerprint  # SPAM_WAVE_KIND
