"""The worker's garbage-collection policy (streams.cli.freeze_long_lived_objects): rarer collections,
each one timed in streams_gc_pause_seconds."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest

from streams import cli, metrics


@pytest.fixture
def restore_gc() -> Iterator[None]:
    thresholds = gc.get_threshold()
    callbacks = list(gc.callbacks)
    yield
    gc.set_threshold(*thresholds)
    gc.callbacks[:] = callbacks
    gc.unfreeze()


def pauses(generation: str) -> float:
    value = metrics.REGISTRY.get_sample_value("streams_gc_pause_seconds_count", {"generation": generation})
    return value or 0.0


def test_collections_are_rarer_and_each_is_timed(restore_gc: None) -> None:
    cli.freeze_long_lived_objects()
    cli.freeze_long_lived_objects()  # twice (tests, the score command): one callback
    assert gc.get_threshold()[0] == cli.GC_YOUNG_THRESHOLD
    assert gc.get_threshold()[2] == cli.GC_FULL_AFTER
    assert gc.callbacks.count(cli._time_collection) == 1
    before = pauses("2")
    gc.collect()
    assert pauses("2") == before + 1


def test_the_worker_can_be_given_its_young_threshold(restore_gc: None) -> None:
    from streams.settings import SettingsError, load_settings

    assert load_settings({}).gc_young_threshold == cli.GC_YOUNG_THRESHOLD
    threshold = load_settings({"STREAMS_GC_YOUNG_THRESHOLD": "500000"}).gc_young_threshold
    cli.freeze_long_lived_objects(threshold)
    assert gc.get_threshold()[0] == 500_000
    assert gc.get_threshold()[2] == cli.GC_FULL_AFTER
    with pytest.raises(SettingsError, match="GC_YOUNG_THRESHOLD must be at least 700"):
        load_settings({"STREAMS_GC_YOUNG_THRESHOLD": "0"})  # 0 would turn automatic collection off
