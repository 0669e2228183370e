"""State values over one changelog record's limit (streams/state_parts.py): written as parts and a
manifest, rebuilt by a restore, never mixed with another version after a crash or compaction."""

from __future__ import annotations

import random
from typing import Any

import orjson
from hypothesis import given, settings
from hypothesis import strategies as st

from streams.agents.tablestore import _faust_json
from streams.models import MAX_MESSAGE_BYTES
from streams.state_parts import SPLIT_ABOVE_BYTES, ChangelogLoader, value_records

Record = tuple[str, bytes | None]


class Writer:
    """What StagedTable.persist writes for one key, version after version (the records in order)."""

    def __init__(self) -> None:
        self.split: dict[str, tuple[str, int]] = {}

    def write(self, key: str, value: Any) -> list[Record]:
        encoded = None if value is None else _faust_json(value)
        records, now = value_records(key, encoded, self.split.pop(key, None), _faust_json)
        if now is not None:
            self.split[key] = now
        return records


def restore(records: list[Record]) -> tuple[dict[Any, Any], ChangelogLoader]:
    data: dict[Any, Any] = {}
    loader = ChangelogLoader(data, {}, {})
    for key, value in records:
        loader.apply(key, None if value is None else orjson.loads(value), partition=0)
    return data, loader


def compacted(records: list[Record]) -> list[Record]:
    """What log compaction may leave: the last record of each key, in log order (tombstones kept)."""
    last = {key: i for i, (key, _) in enumerate(records)}
    return [r for i, r in enumerate(records) if last[r[0]] == i]


def bucket(n: int, seed: int = 0) -> dict[str, list[Any]]:
    """A window bucket of `n` comments, with quotes, backslashes and non-ASCII text in it."""
    rng = random.Random(seed)
    return {
        f'comment-{i}-"q"\\-é': [f"author ✓ {rng.randrange(10**6)}", ["toxicity"], rng.random(), i % 9, i, "thread"]
        for i in range(n)
    }


def test_a_value_over_the_limit_is_written_in_records_that_fit_and_restored_whole() -> None:
    value = bucket(30_000)
    assert len(_faust_json(value)) > MAX_MESSAGE_BYTES
    records = Writer().write("b:0:thread_1m:0:t", value)
    assert len(records) > 2
    assert all(len(k.encode()) + len(v or b"") < MAX_MESSAGE_BYTES - 1024 for k, v in records)
    data, loader = restore(records)
    assert data == {"b:0:thread_1m:0:t": value}
    ((_, count),) = loader.split.values()
    assert list(loader.split) == ["b:0:thread_1m:0:t"] and count == len(records) - 1
    assert loader.leftover() == 0


def test_a_value_under_the_limit_is_one_record_as_before() -> None:
    value = bucket(10)
    assert len(_faust_json(value)) < SPLIT_ABOVE_BYTES
    assert Writer().write("k", value) == [("k", _faust_json(value))]
    assert Writer().write("k", None) == [("k", None)]


def test_the_parts_of_the_version_before_are_deleted_after_the_new_value() -> None:
    writer = Writer()
    first = writer.write("k", bucket(30_000))
    parts = [k for k, _ in first[:-1]]
    second = writer.write("k", {"small": [1]})
    assert second == [("k", _faust_json({"small": [1]}))] + [(k, None) for k in parts]
    data, loader = restore(compacted(first + second))
    assert data == {"k": {"small": [1]}}
    assert loader.split == {} and loader.leftover() == 0


@settings(max_examples=25, deadline=None)
@given(
    sizes=st.lists(st.sampled_from([0, 5, 25_000, 40_000]), min_size=1, max_size=5),
    cut=st.floats(0, 1),
    compact=st.booleans(),
)
def test_a_crash_or_compaction_restores_one_whole_version_never_a_mix(
    sizes: list[int], cut: float, compact: bool
) -> None:
    """Versions of one key (0: deleted); the log is cut anywhere in the last version's records (a
    crash while persisting) and maybe compacted: the restore holds the last version the log
    completed or the one before, exactly."""
    writer = Writer()
    versions = [None if n == 0 else bucket(n, seed=i) for i, n in enumerate(sizes)]
    log: list[Record] = []
    for value in versions[:-1]:
        log += writer.write("k", value)
    last = writer.write("k", versions[-1])
    kept = int(len(last) * cut)
    manifest_at = next(i for i, (key, _) in enumerate(last) if key == "k")
    log += last[:kept]
    data, loader = restore(compacted(log) if compact else log)
    expected = versions[-1] if kept > manifest_at else (versions[-2] if len(versions) > 1 else None)
    assert data.get("k") == expected
    loader.leftover()
    assert set(data) <= {"k"}
