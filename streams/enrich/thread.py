"""Where a comment sits in its thread: parent, root and depth, for streams that arrive out of order.

Pure logic over a key-value store (a Faust Table in the worker, a dict in tests). Every key starts
with the thread id, so with topics keyed by thread all of a thread's state lives in one partition.

- A reply may name its parent by id, or only by the parent's author name; then the parent is the
  latest comment by that author in the thread posted at or before the reply (file order on ties).
- A reply may arrive before its parent. It is placed provisionally (depth 1, `parent_missing`) and
  waits; when the parent (or a better match by author name) arrives, the reply and everything below
  it are placed again and re-emitted with a higher revision, so ClickHouse keeps the corrected row.
- Waiting expires after `pending_ttl_ms` of wall-clock time: the reply then keeps its provisional
  place for good. Expiry is checked when a candidate parent arrives (tables can only be written
  while processing an event of the same partition, so there is no background sweep).
- Redelivery of an already placed event changes nothing and bumps no revision: that is what makes
  at-least-once delivery safe. An older version of a comment (a `created` replayed after its `edited`)
  never overwrites a newer one.
- Retention, applied by `retire` after each batch, by two rules (0 turns a rule off):
  `quiet_ms` of wall clock retires a whole thread once no event has touched it for that long (it
  went quiet; the default, safe for imports, which feed a thread within minutes whatever its age).
  `retention_ms` of event time (for live streams) retires a comment's state once its thread's
  newest event time has passed the comment's last version by that much (the thread moved on), and
  a whole thread once the partition's newest event time has passed the thread's newest by that
  much (the stream moved on: what bounds memory when a stream is replayed faster than real time,
  where wall-clock quiet never comes). The second half means that an old archive fed next to live
  traffic with this rule on loses its threads' structure (their replies find no parent): feed
  backfills with the rule off. The thread keeps a horizon, the newest event time it retired: an
  event for a comment not in the store and posted at or before the horizon may be one seen
  before, so `place` raises `Retired` rather than place it again as new and count it twice (the
  worker dead-letters it, or skips it when it is reading again input it had processed before a
  crash, or ingest sent it again after its own: streams/agents/enrich.py, PROCESSED_PREFIX, and
  streams.steps.enrich.RawPositions). A reply to a retired comment is placed as
  one whose parent is missing; replies placed before keep their place.

Store layout (values are plain JSON types because Faust changelogs serialise them):
  n|thread|comment   -> node dict (see `_node`; "raw": the event's JSON, "pa": its parent author,
                        "w": the window routes of the last version sent, "fd": [fingerprint, count]
                        the spam signal's count of other authors, decided once per text)
  a|thread|author    -> [[posted_ms, seq, comment_id], ...] sorted: comments by that author
  k|thread|comment   -> [child comment ids] (children resolved to this comment)
  wi|thread|parent   -> {child_id: expires_ms} replies waiting for a parent id not seen yet
  wa|thread|author   -> {child_id: expires_ms} replies naming an author with no earlier comment yet
  ba|thread|author   -> [[posted_ms, child_id], ...] sorted: replies that named this author
                        (re-checked when the author posts again at or before them, since a
                        later-arriving comment can be a closer match)
  x|thread|          -> horizon: the newest event time (ms) of a comment retired from this thread
  rh|thread|         -> [hour, ...] sorted: the event-time hours of the buckets below
  rb|thread|hour     -> [[event_ms, comment_id], ...] each comment's last version, by its event hour
                        (an entry older than its comment's last version is stale and skipped; one
                        bucket per hour, so that a batch rewrites the new hour's entries, not the
                        thread's whole schedule; `r|thread|`, one sorted list, is the older form)
  l|thread|          -> [newest event ms, last wall-clock ms an event touched the thread]
  q|scope, q|scope|hour|k -> threads by the wall-clock hour of their last event, in segments
                        (streams.enrich.quiet; scope: the caller's partition)
  e|scope, e|scope|hour|k -> threads by the event-time hour of their newest event
  c|scope            -> the scope's newest event time (ms) placed
  po|partition       -> (the enrich agent's) the newest input offset of a batch whose state is persisted
  pr|partition|raw   -> (the enrich agent's) the newest comments.raw offset (of raw partition `raw`)
                        among the events of those batches: ingest's copies sent again after a crash
                        are at or below it (streams.steps.enrich.RawPositions)
"""

from __future__ import annotations

import bisect
from collections.abc import MutableMapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import msgspec

from streams.enrich.quiet import HOUR_MS as _HOUR_MS
from streams.enrich.quiet import QuietSchedule
from streams.models import CommentEvent

_SEP = "|"
#: Sorts after every arrival sequence number: bisect to "the last entry at or before this time".
_AFTER_ALL = float("inf")
_ENCODER = msgspec.json.Encoder()
_DECODER = msgspec.json.Decoder(CommentEvent)


class Retired(Exception):
    """The event's comment may have been retired from the thread's state (see the module doc)."""


@dataclass(frozen=True)
class Placement:
    """A comment's position, to be (re-)emitted. `revision` grows whenever the row changes."""

    event: CommentEvent
    parent_id: str | None
    root_id: str
    depth: int
    parent_missing: bool
    revision: int


def _key(kind: str, thread_id: str, name: str) -> str:
    return f"{kind}{_SEP}{thread_id}{_SEP}{name}"


def event_time_ms(event: CommentEvent) -> int:
    """The time an event speaks for: its edit time for edits, else its posting time."""
    moment = event.edited_at or event.posted_at
    return int(moment.timestamp() * 1000)


def _ms(moment: datetime) -> int:
    return int(moment.astimezone(UTC).timestamp() * 1000)


def _iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).isoformat(timespec="seconds")


class ThreadTree:
    def __init__(
        self,
        store: MutableMapping[str, Any],
        *,
        pending_ttl_ms: int = 3_600_000,
        retention_ms: int = 0,
        quiet_ms: int = 0,
    ) -> None:
        self.store = store
        self.pending_ttl_ms = pending_ttl_ms
        self.retention_ms = retention_ms
        self.quiet_ms = quiet_ms
        self.retains = bool(retention_ms or quiet_ms)
        self._quiet = QuietSchedule(store, "q")
        #: Threads by the event-time hour of their newest event (the event-time rule's whole threads).
        self._behind = QuietSchedule(store, "e")
        #: Newest event time placed per scope since the last `retire` (its clock is kept at c|scope).
        self._clock: dict[str, int] = {}
        #: Which quiet-thread schedule placed threads join (the caller sets its partition before placing).
        self.scope = "0"
        #: Threads placed in since the last `retire`, per scope.
        self._touched: dict[str, set[str]] = {}
        #: What `retire` retired since the caller last took it: (author, thread, comment, event ms)
        #: per comment, so that the author counts can let go of them too (streams.enrich.authors).
        self.retired_comments: list[tuple[str, str, str, int]] = []

    # -- public --------------------------------------------------------------------------------

    def place(self, event: CommentEvent, *, now_ms: int) -> list[Placement]:
        """Place `event`; return its placement first, then any earlier comments it re-placed."""
        thread = event.thread_id
        node_key = _key("n", thread, event.comment_id)
        old = self.store.get(node_key)
        if old is None and self.retains:
            horizon = self.store.get(_key("x", thread, ""))
            if horizon is not None and _ms(event.posted_at) <= horizon:
                raise Retired(
                    f"comment {event.comment_id} was posted at or before {_iso(horizon)}, when thread "
                    f"{thread}'s state had been retired ({self._rules()}): it may have been counted already"
                )
        if old is not None and old["t_ev"] > event_time_ms(event):
            # An older version arriving late (replay): keep the newer one, re-emit it unchanged.
            return [self._placement(old)]
        raw = _ENCODER.encode(event).decode()
        if old is not None and old["raw"] == raw:
            return [self._placement(old, event)]  # redelivery: nothing changes

        parent_id, by_author = self._resolve(event)
        node = self._node(event, old, raw)
        self.store[node_key] = node
        if old is None:
            self._index_author(event)
        if self.retains:
            self._schedule(node, now_ms=now_ms)
        if by_author and old is None:
            self._index_reply_by_name(event)

        changed = self._attach(node, parent_id, now_ms=now_ms, by_author=by_author)
        out = [self._placement(self.store[node_key], event)]
        seen = {event.comment_id}
        if old is None:
            changed += self._wake_waiters(event, now_ms=now_ms)
        for cid in changed:
            if cid not in seen:
                seen.add(cid)
                out.append(self._placement(self.store[_key("n", thread, cid)]))
        return out

    def window_routes(self, thread_id: str, comment_id: str) -> list[list[str]]:
        """The window routes ([kind, key]) the comment's last delivered version went to."""
        node = self.store.get(_key("n", thread_id, comment_id))
        return list(node.get("w") or []) if node else []

    def set_window_routes(self, thread_id: str, comment_id: str, routes: list[list[str]]) -> None:
        """Remember where this version went, so that the next version can leave the routes it no longer has."""
        key = _key("n", thread_id, comment_id)
        node = self.store.get(key)
        if node is not None and node.get("w") != routes:
            self.store[key] = {**node, "w": routes}

    def decided_duplicate_authors(self, thread_id: str, comment_id: str, fingerprint: str, counted: int) -> int:
        """The count of other authors decided for this comment's text when it was first scored, or
        `counted` (kept as the decision) if it was not yet: a replay reuses the first, because the
        fingerprint state it was counted from is not the same after a crash (other partitions moved
        on, or another process holds them). A new text (an edit) is decided afresh."""
        key = _key("n", thread_id, comment_id)
        node = self.store.get(key)
        if node is None:
            return counted
        decided = node.get("fd")
        if decided and decided[0] == fingerprint:
            return int(decided[1])
        self.store[key] = {**node, "fd": [fingerprint, counted]}
        return counted

    def holds_author(self, thread: str, author: str) -> bool:
        """Whether the thread's state still holds a comment by `author`."""
        return bool(self.store.get(_key("a", thread, author)))

    def retire(self, now_ms: int) -> int:
        """Apply the retention (see the module doc) to this scope's threads placed in since the last
        call, and to its threads that went quiet before `now_ms` (wall clock); return how many
        comments were retired."""
        retired = 0
        for thread in sorted(self._touched.pop(self.scope, ())):
            seen = self.store.get(_key("l", thread, ""))
            if seen is not None:
                retired += self._retire_older(thread, seen[0] - self.retention_ms)
        if self.retention_ms:
            clock_key = f"c{_SEP}{self.scope}"
            clock = max(self._clock.pop(self.scope, 0), self.store.get(clock_key) or 0)
            if clock != self.store.get(clock_key):
                self.store[clock_key] = clock
            retired += self._retire_whole(self._behind, clock - self.retention_ms, newest=True)
        if self.quiet_ms:
            retired += self._retire_whole(self._quiet, now_ms - self.quiet_ms, newest=False)
        return retired

    def _retire_whole(self, schedule: QuietSchedule, before_ms: int, *, newest: bool) -> int:
        """Retire the scope's threads whose newest event time (`newest`) or last wall-clock touch is
        before `before_ms`."""
        retired = 0
        for thread in schedule.due(self.scope, before_ms):
            seen = self.store.get(_key("l", thread, ""))
            if seen is not None and seen[0 if newest else 1] < before_ms:
                retired += self._retire_older(thread, _AFTER_ALL)
                del self.store[_key("l", thread, "")]
        return retired

    def _rules(self) -> str:
        rules = []
        if self.retention_ms:
            rules.append(f"{self.retention_ms // 1000} s of event time")
        if self.quiet_ms:
            rules.append(f"{self.quiet_ms // 1000} s without events")
        return "state retention " + " or ".join(rules)

    def _retire_older(self, thread: str, cutoff_ms: float) -> int:
        """Retire the thread's comments whose last version is older than `cutoff_ms`."""
        retired = 0
        legacy_key = _key("r", thread, "")  # the older form: one sorted list per thread
        if legacy_key in self.store:
            legacy = self.store[legacy_key]
            due = bisect.bisect_left(legacy, [cutoff_ms])
            retired += self._retire_entries(thread, legacy[:due])
            self._store_or_delete(legacy_key, legacy[due:])
        hours_key = _key("rh", thread, "")
        hours = self.store.get(hours_key) or []
        emptied = 0
        for hour in hours:
            if hour * _HOUR_MS >= cutoff_ms:
                break
            bucket_key = _key("rb", thread, str(hour))
            bucket = self.store.get(bucket_key) or []
            kept = [entry for entry in bucket if entry[0] >= cutoff_ms]
            retired += self._retire_entries(thread, [entry for entry in bucket if entry[0] < cutoff_ms])
            if len(kept) != len(bucket):
                self._store_or_delete(bucket_key, kept)
            if kept:
                break  # the cutoff falls inside this hour: later hours are all newer
            emptied += 1
        if emptied:
            self._store_or_delete(hours_key, hours[emptied:])
        return retired

    def _retire_entries(self, thread: str, entries: list[list[Any]]) -> int:
        """Retire the comments of schedule `entries` that are still at that version."""
        retired = 0
        for event_ms, cid in entries:
            node = self.store.get(_key("n", thread, cid))
            if node is not None and node["t_ev"] == event_ms:
                self._retire_node(node)
                retired += 1
        return retired

    def _schedule(self, node: dict[str, Any], *, now_ms: int) -> None:
        """Note the comment's last version for the retention, and that its thread was touched now."""
        thread = node["th"]
        hour = node["t_ev"] // _HOUR_MS
        bucket_key = _key("rb", thread, str(hour))
        bucket = self._writable_list(bucket_key)
        bucket.append([node["t_ev"], node["id"]])
        self.store[bucket_key] = bucket
        hours_key = _key("rh", thread, "")
        hours = self.store.get(hours_key) or []
        if hour not in hours:
            self.store[hours_key] = sorted([*hours, hour])
        seen_key = _key("l", thread, "")
        seen = self.store.get(seen_key)
        newest = max(node["t_ev"], seen[0]) if seen else node["t_ev"]
        if self.retention_ms:
            self._touched.setdefault(self.scope, set()).add(thread)
            self._behind.touch(self.scope, thread, newest, seen[0] if seen else None)
            self._clock[self.scope] = max(newest, self._clock.get(self.scope, newest))
        if self.quiet_ms:
            self._quiet.touch(self.scope, thread, now_ms, seen[1] if seen else None)
        if seen is None or seen[0] != newest or seen[1] // _HOUR_MS != now_ms // _HOUR_MS:
            self.store[seen_key] = [newest, now_ms]

    def _retire_node(self, node: dict[str, Any]) -> None:
        """Drop a comment's state and everything that points at it; raise the thread's horizon."""
        thread, cid = node["th"], node["id"]
        self.retired_comments.append((node["au"], thread, cid, node["t_ev"]))
        horizon_key = _key("x", thread, "")
        self.store[horizon_key] = max(node["t_ev"], self.store.get(horizon_key) or node["t_ev"])
        author_key = _key("a", thread, node["au"])
        entries = self._writable_list(author_key)
        i = bisect.bisect_left(entries, [node["t"]])
        while i < len(entries) and entries[i][0] == node["t"]:
            if entries[i][2] == cid:
                del entries[i]
                break
            i += 1
        self._store_or_delete(author_key, entries)
        if node["p"] is not None and not node["m"]:
            self._remove(_key("k", thread, node["p"]), cid)
        if node["m"]:
            waiting = _key("wi", thread, node["p"]) if node["p"] else _key("wa", thread, node.get("pa") or "")
            self._unwait(waiting, cid)
        if node.get("pa"):
            named_key = _key("ba", thread, node["pa"])
            named = self._writable_list(named_key)
            if [node["t"], cid] in named:
                named.remove([node["t"], cid])
                self._store_or_delete(named_key, named)
        for key in (_key("k", thread, cid), _key("wi", thread, cid), _key("n", thread, cid)):
            if key in self.store:
                del self.store[key]

    def _store_or_delete(self, key: str, values: list[Any]) -> None:
        if values:
            self.store[key] = values
        elif key in self.store:
            del self.store[key]

    # -- resolution ----------------------------------------------------------------------------

    def _resolve(self, event: CommentEvent) -> tuple[str | None, bool]:
        """(parent id or None, whether it was resolved by author name)."""
        if event.parent_id:
            return event.parent_id, False
        if not event.parent_author:
            return None, False
        return self._latest_by_author(event, event.parent_author), True

    def _latest_by_author(self, child: CommentEvent, author: str) -> str | None:
        entries = self.store.get(_key("a", child.thread_id, author)) or []
        # Sorted by (posted_ms, arrival seq): the last entry at or before the child wins.
        i = bisect.bisect_right(entries, [_ms(child.posted_at), _AFTER_ALL])
        while i > 0:
            i -= 1
            if entries[i][2] != child.comment_id:
                return str(entries[i][2])
        return None

    # -- state updates -------------------------------------------------------------------------

    def _node(self, event: CommentEvent, old: dict[str, Any] | None, raw: str) -> dict[str, Any]:
        node = dict(old) if old else {"p": None, "d": 0, "r": event.comment_id, "m": False, "v": 0, "pos": False}
        node.update(
            id=event.comment_id,
            th=event.thread_id,
            au=event.author,
            t=_ms(event.posted_at),
            t_ev=event_time_ms(event),
            raw=raw,
            pa=event.parent_author,
        )
        if old is not None:
            node["v"] = old["v"] + 1  # edit / delete: a newer row
        return node

    def _writable(self, key: str, kind: type[Any]) -> Any:
        """The list or dict (`kind`) at `key`, to change and write back: the batch's own copy. An
        author's comments in a big thread run to thousands, and replies waiting for one parent that
        never comes to as many as anyone sends: copying them for every comment made placing
        quadratic (20,000 waiting replies took 7.5 s to place and wake)."""
        owned = getattr(self.store, "owned", None)  # a WriteBuffer (the worker's tables)
        mine = owned(key) if owned is not None else None
        return mine if mine is not None else kind(self.store.get(key) or ())

    def _writable_list(self, key: str) -> list[Any]:
        return self._writable(key, list)  # type: ignore[no-any-return]

    def _index_author(self, event: CommentEvent) -> None:
        key = _key("a", event.thread_id, event.author)
        entries = self._writable_list(key)
        seq = len(entries)
        bisect.insort(entries, [_ms(event.posted_at), seq, event.comment_id])
        self.store[key] = entries

    def _index_reply_by_name(self, event: CommentEvent) -> None:
        key = _key("ba", event.thread_id, event.parent_author or "")
        entries = self._writable_list(key)
        bisect.insort(entries, [_ms(event.posted_at), event.comment_id])
        self.store[key] = entries

    def _append(self, key: str, value: str, *, absent: bool = False) -> None:
        """Add `value` to the list at `key` once. `absent`: the caller knows it is not there, which
        spares a scan of the list (a pile-on of 20,000 replies to one comment spent 1.6 s on them)."""
        values = self._writable_list(key)
        if absent or value not in values:
            values.append(value)
            self.store[key] = values

    def _remove(self, key: str, value: str) -> None:
        """Take `value` out of the list at `key`, every copy of it (a crash that persisted a children
        list but not the child's node can leave one twice: see _attach)."""
        values = self._writable_list(key)
        if value in values:
            values[:] = [v for v in values if v != value]
            if values:
                self.store[key] = values
            else:
                del self.store[key]

    def _wait(self, key: str, child_id: str, *, now_ms: int) -> None:
        waiting: dict[str, int] = self._writable(key, dict)
        waiting[child_id] = now_ms + self.pending_ttl_ms
        self.store[key] = waiting

    def _unwait(self, key: str, child_id: str) -> None:
        if child_id not in (self.store.get(key) or {}):
            return
        waiting: dict[str, int] = self._writable(key, dict)
        del waiting[child_id]
        if waiting:
            self.store[key] = waiting
        else:
            del self.store[key]

    def _attach(self, node: dict[str, Any], parent_id: str | None, *, now_ms: int, by_author: bool) -> list[str]:
        """Set a node's parent/root/depth. Returns the ids of already placed nodes that moved: this
        node (if it had a place before and it changed) and the descendants that moved with it."""
        thread, cid = node["th"], node["id"]
        node_key = _key("n", thread, cid)
        node = dict(self.store[node_key])
        # "pa": the event's parent author, kept so that placing needs no decode (older nodes lack it).
        parent_author = node["pa"] if "pa" in node else _DECODER.decode(node["raw"]).parent_author
        position: tuple[str | None, str, int, bool]
        if parent_id is None and parent_author is None:
            position = (None, cid, 0, False)
        elif parent_id is None:
            # Named a parent author with no earlier comment by them yet: wait for one.
            self._wait(_key("wa", thread, parent_author or ""), cid, now_ms=now_ms)
            position = (None, cid, 1, True)
        else:
            parent = self.store.get(_key("n", thread, parent_id))
            if parent is None and node["pos"] and node["p"] == parent_id and not node["m"]:
                position = (parent_id, node["r"], node["d"], False)  # its parent was retired: keep its place
            elif parent is None:
                self._wait(_key("wi", thread, parent_id), cid, now_ms=now_ms)
                position = (parent_id, parent_id, 1, True)
            else:
                if by_author:
                    self._unwait(_key("wa", thread, parent_author or ""), cid)
                # A node never placed, or waiting for a missing parent, is in no children list
                # (but after a crash that persisted the list and not the node: then twice, which
                # _remove and _replace_children tolerate).
                self._append(_key("k", thread, parent_id), cid, absent=not node["pos"] or node["m"])
                position = (parent_id, parent["r"], parent["d"] + 1, False)
        previous = (node["p"], node["r"], node["d"], node["m"]) if node["pos"] else None
        if previous == position:
            return []
        if previous is not None and previous[0] and previous[0] != position[0]:
            self._remove(_key("k", thread, previous[0]), cid)
        node["p"], node["r"], node["d"], node["m"] = position
        node["pos"] = True
        if previous is not None:
            node["v"] += 1
        self.store[node_key] = node
        return [cid, *self._replace_children(thread, cid, now_ms=now_ms)] if previous is not None else []

    def _replace_children(self, thread: str, cid: str, *, now_ms: int) -> list[str]:
        """A comment moved: its resolved children move with it (depth and root follow)."""
        moved: list[str] = []
        for child_id in list(self.store.get(_key("k", thread, cid)) or []):
            child = self.store.get(_key("n", thread, child_id))
            if child is None:
                continue
            moved += self._attach(child, cid, now_ms=now_ms, by_author=False)
        return moved

    def _wake_waiters(self, event: CommentEvent, *, now_ms: int) -> list[str]:
        """A new comment arrived: replies waiting for it, or naming its author, may move."""
        thread, cid = event.thread_id, event.comment_id
        moved: list[str] = []
        waiting_key = _key("wi", thread, cid)
        for child_id, expires_ms in list((self.store.get(waiting_key) or {}).items()):
            self._unwait(waiting_key, child_id)
            child = self.store.get(_key("n", thread, child_id))
            if child is not None and expires_ms > now_ms:
                moved += self._attach(child, cid, now_ms=now_ms, by_author=False)
        # Replies that named this author: the new comment may be their (closer) parent now. Only
        # replies posted at or after it can take it (sorted list: bisect, not a scan per arrival).
        named = self.store.get(_key("ba", thread, event.author)) or []
        new_ms = _ms(event.posted_at)
        for _posted_ms, child_id in named[bisect.bisect_left(named, [new_ms, ""]) :]:
            if child_id == cid:
                continue
            child = self.store.get(_key("n", thread, child_id))
            if child is None:
                continue
            waiting = self.store.get(_key("wa", thread, event.author)) or {}
            if child["m"] and child["p"] is None and waiting.get(child_id, 0) <= now_ms:
                self._unwait(_key("wa", thread, event.author), child_id)
                continue  # waited past its TTL: keeps its provisional place
            child_event = _DECODER.decode(child["raw"])
            best = self._latest_by_author(child_event, event.author)
            if best is not None and best != child["p"]:
                moved += self._attach(child, best, now_ms=now_ms, by_author=True)
        return moved

    @staticmethod
    def _placement(node: dict[str, Any], event: CommentEvent | None = None) -> Placement:
        """`event`: the node's own event when the caller has it (it is what "raw" holds)."""
        return Placement(
            event=event if event is not None else _DECODER.decode(node["raw"]),
            parent_id=node["p"],
            root_id=node["r"],
            depth=node["d"],
            parent_missing=node["m"],
            revision=node["v"],
        )
