"""The enrich step: comment events, per comments.valid partition -> enriched rows (thread place,
text features, language, flags) and their deliveries to the windows.

State: the thread tree and the text fingerprints (spam signal), in the stores it is given. With a
retention, each partition's threads retire what the retention allows after its batch (see
streams.enrich.thread), and its fingerprints not seen for the retention (of the partition's event
time when the event-time rule is on, else the quiet time of wall clock) are forgotten; an event
that may belong to a retired comment is returned in `retired`, for the dead letters."""

from __future__ import annotations

from collections.abc import Callable, MutableMapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from streams.enrich.authors import RetiredComments
from streams.enrich.compose import enrich_placements, note_fingerprint, retire_fingerprints, touch_fingerprint
from streams.enrich.flags import FlagScorer
from streams.enrich.quiet import QuietSchedule
from streams.enrich.text import TextFeatures, text_features
from streams.enrich.thread import Placement, Retired, ThreadTree
from streams.models import CommentEvent, EnrichedComment
from streams.steps.windows import FanOut


@dataclass
class EnrichOutput:
    rows: list[EnrichedComment]
    #: The rows' deliveries to the windows, per windows.input partition (progress reports not yet added).
    fan_out: FanOut
    received: int = 0
    #: (event, why) for events of comments whose thread state was retired.
    retired: list[tuple[CommentEvent, str]] = field(default_factory=list)
    #: Comments retired from the thread state after this batch.
    retired_state: int = 0
    #: Text fingerprints forgotten after this batch (not seen for the retention or the quiet time).
    retired_fingerprints: int = 0
    #: The retired comments, per author and thread: for the authors' counts (sent after `rows`).
    retired_authors: list[RetiredComments] = field(default_factory=list)


@dataclass
class EnrichStep:
    tree_store: MutableMapping[str, Any]
    fingerprint_store: MutableMapping[str, Any]
    scorer: FlagScorer
    partitions: int
    #: Called with each input partition before its comments: the stores' writes belong to it.
    at_partition: Callable[[int], None] = lambda _partition: None
    #: Newest event time seen per input partition ("valid:N"), reported to the windows after each batch.
    progress: dict[str, int] = field(default_factory=dict)
    #: Wall time (ms) each input partition's newest event time last advanced (see FanOut.add_progress).
    advanced_at: dict[str, int] = field(default_factory=dict)
    #: Thread state retention by event time and by wall-clock quiet time (0: off; see streams.enrich.thread).
    retention_ms: int = 0
    quiet_ms: int = 0

    def __post_init__(self) -> None:
        self.tree = ThreadTree(self.tree_store, retention_ms=self.retention_ms, quiet_ms=self.quiet_ms)
        self.fingerprint_schedule = QuietSchedule(self.fingerprint_store, "fq")

    def run(self, batches: Sequence[tuple[int, Sequence[CommentEvent]]], *, now_ms: int) -> EnrichOutput:
        """Enrich `batches` ((input partition, its comments in order), ...) as one batch."""
        tree = self.tree
        tree.retired_comments.clear()  # a failed attempt's, if any (the batch is replayed whole)
        placements: list[Placement] = []
        partitions: list[int] = []  # the input partition each placement came from
        features: list[TextFeatures] = []
        duplicates: list[int] = []
        received = 0
        retired: list[tuple[CommentEvent, str]] = []
        for partition, comments in batches:
            self.at_partition(partition)
            tree.scope = str(partition)
            received += len(comments)
            source = f"valid:{partition}"
            for comment in comments:
                posted_ms = int(comment.posted_at.timestamp() * 1000)
                if posted_ms > self.progress.get(source, -1):
                    self.progress[source] = posted_ms
                    self.advanced_at[source] = now_ms
                try:
                    placed = tree.place(comment, now_ms=now_ms)
                except Retired as exc:
                    retired.append((comment, str(exc)))
                    continue
                for placement in placed:
                    feats = text_features(placement.event.body)
                    partitions.append(partition)
                    placements.append(placement)
                    features.append(feats)
                    event = placement.event
                    posted = int(event.posted_at.timestamp() * 1000)
                    counted = note_fingerprint(self.fingerprint_store, feats.fingerprint, event.author, posted)
                    duplicates.append(
                        tree.decided_duplicate_authors(event.thread_id, event.comment_id, feats.fingerprint, counted)
                    )
                    if self.tree.retains:
                        # The event-time rule's clock when it is on (a replay faster than real time
                        # never goes quiet by the wall clock), else the wall clock.
                        at = posted if self.retention_ms else now_ms
                        touch_fingerprint(
                            self.fingerprint_store, self.fingerprint_schedule, tree.scope, feats.fingerprint, at
                        )
        fan_out = FanOut(self.partitions)
        rows = enrich_placements(placements, features, duplicates, scorer=self.scorer)
        # Tree writes of the routes belong to the partition of each row's thread.
        current = -1
        for row, partition in zip(rows, partitions, strict=True):
            if partition != current:
                self.at_partition(partition)
                current = partition
            thread_id, comment_id = row.event.thread_id, row.event.comment_id
            routes = fan_out.add(row, f"valid:{partition}", tree.window_routes(thread_id, comment_id))
            tree.set_window_routes(thread_id, comment_id, routes)
        retired_state = forgotten = 0
        if self.tree.retains:
            for partition in sorted({partition for partition, _ in batches}):
                self.at_partition(partition)
                tree.scope = str(partition)
                retired_state += tree.retire(now_ms)
                if self.retention_ms:
                    newest = self.progress.get(f"valid:{partition}", 0)
                    before = newest - self.retention_ms
                else:
                    before = now_ms - self.quiet_ms
                forgotten += retire_fingerprints(self.fingerprint_store, self.fingerprint_schedule, tree.scope, before)
        return EnrichOutput(
            rows=rows,
            fan_out=fan_out,
            received=received,
            retired=retired,
            retired_state=retired_state,
            retired_fingerprints=forgotten,
            retired_authors=_by_author_and_thread(tree.retired_comments, tree.holds_author),
        )


def _by_author_and_thread(
    retired: list[tuple[str, str, str, int]], holds_author: Callable[[str, str], bool]
) -> list[RetiredComments]:
    """One notice per author and thread; `last` when the thread holds no other comment of theirs."""
    grouped: dict[tuple[str, str], tuple[list[str], list[int]]] = {}
    for author, thread, comment_id, event_ms in retired:
        ids, newest = grouped.setdefault((author, thread), ([], [event_ms]))
        ids.append(comment_id)
        newest[0] = max(newest[0], event_ms)
    retired.clear()
    return [
        RetiredComments(a, t, ids, newest[0], last=not holds_author(t, a)) for (a, t), (ids, newest) in grouped.items()
    ]


def sources_ahead(progress: dict[str, int], pending: set[str], max_skew_ms: int) -> set[str]:
    """The input partitions ("valid:N") to pause: those whose newest event time is more than
    `max_skew_ms` ahead of the slowest partition that still has comments to read (`pending`: not
    read to its end). The windows' watermark follows that slowest one, so everything the others
    send meanwhile is held in window state: pausing them bounds it by the skew. A slowest
    partition read to its end (a quiet one) holds nobody back; 0 turns this off."""
    floor = min((progress[s] for s in pending if s in progress), default=None)
    if not max_skew_ms or floor is None:
        return set()
    return {source for source, event_ms in progress.items() if event_ms > floor + max_skew_ms}


#: thread_state key prefix of the newest comments.raw offset processed per (comments.valid partition,
#: comments.raw partition): `pr|valid|raw` (see RawPositions).
RAW_PROCESSED_PREFIX = "pr|"


def raw_processed_key(valid_partition: int, raw_partition: int) -> str:
    return f"{RAW_PROCESSED_PREFIX}{valid_partition}|{raw_partition}"


class RawPositions:
    """Where on comments.raw one enrich batch's events were read, against the newest raw offset
    each (comments.valid partition, comments.raw partition) pair had persisted before the batch.

    Ingest sends each raw partition's events to a valid partition in raw-offset order, so an event
    at or below its pair's persisted offset was processed before: ingest sent it again after a
    crash (its copies get new comments.valid offsets). A source sending a comment again writes a new
    raw message, at a higher offset, so it is never taken for one. Events from envelopes without
    positions (written before they were carried) are never taken for copies.
    """

    def __init__(self, store: MutableMapping[str, Any]) -> None:
        self._store = store
        #: The persisted offset of each pair seen in the batch (None: none yet).
        self.before: dict[tuple[int, int], int | None] = {}
        self.newest: dict[tuple[int, int], int] = {}
        #: id(event) -> (valid partition, raw partition, raw offset); the events live as long as the batch.
        self._at: dict[int, tuple[int, int, int]] = {}

    def note(self, partition: int, events: Sequence[CommentEvent], raw: Sequence[tuple[int, int]]) -> None:
        """Record where one envelope's events (read from comments.valid `partition`) were on comments.raw."""
        if not raw:
            return
        for event, (raw_partition, offset) in zip(events, raw, strict=True):
            pair = (partition, raw_partition)
            if pair not in self.before:
                self.before[pair] = self._store.get(raw_processed_key(*pair))
            if offset > self.newest.get(pair, -1):
                self.newest[pair] = offset
            self._at[id(event)] = (partition, raw_partition, offset)

    def read_before(self, event: CommentEvent) -> bool:
        """Was this event's raw message processed by a batch persisted before this one?"""
        at = self._at.get(id(event))
        if at is None:
            return False
        before = self.before[(at[0], at[1])]
        return before is not None and at[2] <= before

    def advanced(self) -> list[tuple[int, str, int]]:
        """(valid partition, key, offset) for each pair this batch moved forward: what to stage
        (never backwards: a batch of copies leaves its pair where it was)."""
        moved = []
        for pair, offset in self.newest.items():
            before = self.before[pair]
            if before is None or offset > before:
                moved.append((pair[0], raw_processed_key(*pair), offset))
        return moved
