"""Did every record of a feed land? Per feed: lines read = comments landed + dead letters + duplicates.

`streams feed` writes a manifest per file fed (``<data dir>/../feeds/<feed id>.json``, and the comment
ids it sent in ``<feed id>.ids``): how many records it read, how many were bad, how many repeated a
comment id already sent in the same feed (duplicates: they land as one row), and the first and last
offset per partition the broker acknowledged. `streams reconcile` counts, in ClickHouse, the feed's
comment ids present in `comments` and the dead letters from its offsets, and reports what is left
unaccounted. Caveat: another producer writing to comments.raw while the feed ran shares its offset
ranges, so dead letters of that producer would be counted too.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgspec

from streams.settings import Settings

_ID_CHUNK = 5000


class FeedManifest(msgspec.Struct, kw_only=True):
    feed_id: str
    source: str
    format: str
    topic: str
    started_at: float
    read: int = 0
    bad: int = 0
    duplicates: int = 0
    acked: int = 0
    interrupted: bool = False
    #: partition -> [first offset, last offset] acknowledged by the broker
    offsets: dict[int, list[int]] = msgspec.field(default_factory=dict)


class _CommentId(msgspec.Struct):
    comment_id: str = ""


_id_decoder = msgspec.json.Decoder(_CommentId)


def manifest_dir(settings: Settings) -> Path:
    return Path(settings.data_dir).parent / "feeds"


@dataclass
class ManifestRecorder:
    """Collects a feed's manifest while it runs (ids in memory: ~100 bytes a comment)."""

    manifest: FeedManifest
    ids: set[str] = field(default_factory=set)

    @classmethod
    def start(cls, source: Path, fmt: str, topic: str) -> ManifestRecorder:
        feed_id = time.strftime("%Y%m%dT%H%M%S") + "-" + uuid.uuid4().hex[:8]
        return cls(
            FeedManifest(feed_id=feed_id, source=str(source.resolve()), format=fmt, topic=topic, started_at=time.time())
        )

    def record(self, value: bytes, bad: bool) -> None:
        m = self.manifest
        m.read += 1
        if bad:
            m.bad += 1
            return
        try:
            cid = _id_decoder.decode(value).comment_id
        except msgspec.DecodeError:
            return
        if cid in self.ids:
            m.duplicates += 1
        else:
            self.ids.add(cid)

    def write(self, directory: Path, offsets: dict[int, list[int]], acked: int, interrupted: bool) -> Path:
        directory.mkdir(parents=True, exist_ok=True)
        self.manifest.offsets = offsets
        self.manifest.acked = acked
        self.manifest.interrupted = interrupted
        (directory / f"{self.manifest.feed_id}.ids").write_text("".join(i + "\n" for i in sorted(self.ids)))
        target = directory / f"{self.manifest.feed_id}.json"
        target.write_bytes(msgspec.json.format(msgspec.json.encode(self.manifest)))
        return target


def load_manifests(directory: Path, source: Path | None = None) -> list[FeedManifest]:
    if not directory.is_dir():
        return []
    out = [msgspec.json.decode(p.read_bytes(), type=FeedManifest) for p in sorted(directory.glob("*.json"))]
    if source is not None:
        wanted = str(source.resolve())
        out = [m for m in out if m.source == wanted]
    return out


def read_ids(directory: Path, manifest: FeedManifest) -> Iterator[str]:
    path = directory / f"{manifest.feed_id}.ids"
    with path.open(encoding="utf-8") as fh:
        for line in fh:
            if line.strip():
                yield line.rstrip("\n")


@dataclass(frozen=True)
class Reconciliation:
    manifest: FeedManifest
    landed: int
    dead_letters: int

    @property
    def unaccounted(self) -> int:
        m = self.manifest
        return m.read - self.landed - self.dead_letters - m.duplicates

    @property
    def ok(self) -> bool:
        return self.unaccounted == 0


def _chunks(ids: Iterable[str]) -> Iterator[list[str]]:
    chunk: list[str] = []
    for i in ids:
        chunk.append(i)
        if len(chunk) >= _ID_CHUNK:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def reconcile(client: Any, directory: Path, manifest: FeedManifest) -> Reconciliation:
    """Count the feed's landed comments and dead letters (client: clickhouse-connect or WorkerClient)."""
    landed = 0
    for chunk in _chunks(read_ids(directory, manifest)):
        rows = client.query(
            "SELECT uniqExact(comment_id) FROM comments WHERE comment_id IN {ids:Array(String)}", {"ids": chunk}
        ).result_rows
        landed += int(rows[0][0])
    dead = 0
    for partition, (first, last) in manifest.offsets.items():
        rows = client.query(
            "SELECT count() FROM dead_letters FINAL WHERE source_topic = {topic:String} "
            "AND source_partition = {p:Int32} AND source_offset BETWEEN {a:Int64} AND {b:Int64}",
            {"topic": manifest.topic, "p": int(partition), "a": first, "b": last},
        ).result_rows
        dead += int(rows[0][0])
    # Records too large for Kafka were dead-lettered by the feeder itself, tagged with their origin.
    rows = client.query(
        "SELECT count() FROM dead_letters FINAL WHERE stage = 'feed' AND startsWith(origin, {path:String})",
        {"path": str(Path(manifest.source).resolve())},
    ).result_rows
    dead += int(rows[0][0])
    return Reconciliation(manifest, landed, dead)
