"""The three dashboards, and lookups across their panels (the report renders panels by key)."""

from __future__ import annotations

from collections.abc import Iterator

from streams.dashboards.activity import _activity
from streams.dashboards.flagged import _flagged
from streams.dashboards.model import Dashboard, Panel
from streams.dashboards.pipeline import _pipeline


def dashboards() -> list[Dashboard]:
    return [_activity(), _flagged(), _pipeline()]


def panel(key: str) -> Panel:
    """The panel with this key, in any dashboard (the report renders panels by key)."""
    for dashboard in dashboards():
        for p in dashboard.panels:
            if p.key == key:
                return p
    raise KeyError(f"no dashboard panel {key!r}")


def clickhouse_panels() -> Iterator[tuple[Dashboard, Panel]]:
    for dashboard in dashboards():
        for p in dashboard.panels:
            if p.clickhouse is not None:
                yield dashboard, p
