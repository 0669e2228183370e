"""State values too large for one changelog record, written as several (pure: no Kafka here).

Why: a changelog record must fit the topics' message limit (1 MiB, `max.message.bytes`); a larger
one is refused by the broker, the persist fails, and the batch that grew the value is retried,
split, and dead-lettered message by message, valid comments and all. Values grow with bursts: a
thread's minute window bucket passes 1 MiB at 15,000-40,000 comments in one minute (a flood, a
bot; 12,000 with long ids), a thread's retention schedule at about 40,000 in one event hour. So a
value whose encoding is over SPLIT_ABOVE_BYTES goes to the changelog as parts, each a JSON string
holding a slice of the encoding, then a manifest under the value's own key:

  {key}\\x00part|{generation}|{i} -> "..."   (i = 0 .. n-1, all before the manifest, same partition)
  {key}                          -> {"\\x00parts": n, "generation": generation}

A restore collects the parts and rebuilds the value when it reads the manifest. Each write of a
large value uses a new generation, so a crash that persisted only some parts of a new version never
mixes them into the old one (its manifest names its own generation); the parts of the version
before are deleted (tombstones) after the new manifest, and parts no manifest claims are dropped
at the end of a restore.
"""

from __future__ import annotations

import os
from collections.abc import Callable, MutableMapping
from typing import Any

import orjson

#: Encodings above this are split (the limit is 1,048,588 bytes per record batch, key included).
SPLIT_ABOVE_BYTES = 768 * 1024
#: Characters of the encoding per part: a JSON string of them takes at most 4 bytes per character
#: (a UTF-8 character; the encoding's own escapes are ASCII, a quote or backslash becomes 2).
PART_CHARS = 200_000
_PART = "\x00part|"
_MANIFEST = "\x00parts"


def part_key(key: str, generation: str, index: int) -> str:
    return f"{key}{_PART}{generation}|{index}"


def is_part_key(key: Any) -> bool:
    return isinstance(key, str) and _PART in key


def new_generation() -> str:
    return os.urandom(6).hex()


def split(key: str, encoded: bytes, generation: str) -> tuple[list[tuple[str, bytes]], dict[str, Any]]:
    """The part records (key, encoded value) of `encoded`, in order, and the manifest to write after them."""
    text = encoded.decode("utf-8")
    parts = [
        (part_key(key, generation, i), orjson.dumps(text[start : start + PART_CHARS]))
        for i, start in enumerate(range(0, len(text), PART_CHARS))
    ]
    return parts, {_MANIFEST: len(parts), "generation": generation}


def value_records(
    key: str,
    encoded: bytes | None,
    previous: tuple[str, int] | None,
    encode_value: Callable[[Any], bytes | None],
) -> tuple[list[tuple[str, bytes | None]], tuple[str, int] | None]:
    """The changelog records (key, value bytes; None deletes) that write `encoded` (None: the key is
    deleted) under `key`, whose changelog value was split into `previous` (generation, count) or not
    (None); and how the new value is split (None: it is not)."""
    records: list[tuple[str, bytes | None]] = []
    now: tuple[str, int] | None = None
    if encoded is not None and len(encoded) > SPLIT_ABOVE_BYTES:
        generation = new_generation()
        parts, manifest = split(key, encoded, generation)
        records.extend(parts)
        encoded = encode_value(manifest)
        now = (generation, len(parts))
    records.append((key, encoded))
    if previous is not None:  # after the new value: a crash before these leaves parts a restore drops
        old_generation, count = previous
        records.extend((part_key(key, old_generation, i), None) for i in range(count))
    return records, now


def manifest_of(value: Any) -> tuple[str, int] | None:
    """(generation, number of parts) if `value` is a manifest, else None."""
    if isinstance(value, dict) and _MANIFEST in value:
        return str(value["generation"]), int(value[_MANIFEST])
    return None


class ChangelogLoader:
    """Applies changelog records in order to a table's memory (`data`, and `owner`: each key's
    partition), as Faust's memory store does (a null value deletes the key), rebuilding values that
    were written as parts. `split` is kept up to date: the keys whose changelog value is split now."""

    def __init__(
        self, data: MutableMapping[Any, Any], owner: MutableMapping[Any, int], split: dict[str, tuple[str, int]]
    ) -> None:
        self.data, self.owner, self.split = data, owner, split
        self._parts: dict[str, str] = {}

    def apply(self, key: Any, value: Any, partition: int) -> None:
        if is_part_key(key):
            if value is None:
                self._parts.pop(key, None)
            else:
                self._parts[key] = value
            return
        if value is None:
            self.data.pop(key, None)
            self.owner.pop(key, None)
            self.split.pop(key, None)
            return
        manifest = manifest_of(value)
        if manifest is not None:
            generation, count = manifest
            try:
                slices = [self._parts.pop(part_key(key, generation, i)) for i in range(count)]
            except KeyError as missing:
                raise MissingPart(f"key {key!r}: part {missing} of its value is not in the changelog") from None
            value = orjson.loads("".join(slices))
            self.split[key] = manifest
        elif self.split:
            self.split.pop(key, None)
        self.data[key] = value
        self.owner[key] = partition

    def leftover(self) -> int:
        """Forget the parts no manifest claimed (a crash between parts and manifest); how many."""
        count = len(self._parts)
        self._parts.clear()
        return count


class MissingPart(KeyError):
    """A manifest whose parts were not all read before it (never written so: a damaged changelog)."""
