"""What a dashboard is made of: queries, panels, rows, variables, and the datasource constants.

Plain frozen dataclasses; `streams.dashboards.render` turns them into Grafana's JSON model.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, Literal

from streams import PROJECT_ROOT

DASHBOARDS_DIR = PROJECT_ROOT / "dashboards"
CLICKHOUSE_TYPE = "grafana-clickhouse-datasource"
PROMETHEUS_TYPE = "prometheus"
#: The uids datasources.yaml provisions; the datasource variables default to them.
CLICKHOUSE_UID = "comment-streams-clickhouse"
PROMETHEUS_UID = "comment-streams-prometheus"
#: Targets carry a v4+ pluginVersion so the plugin does not run its v3 query migration on them.
PLUGIN_VERSION = "4.0.0"
FLAG_CATEGORIES = ("toxicity", "profanity", "identity_attack", "threat", "spam", "username")
TAG = "comment-streams"

QueryType = Literal["table", "timeseries"]

JSON = dict[str, Any]


@dataclass(frozen=True)
class ClickHouseQuery:
    """Raw SQL for the ClickHouse plugin and the column names it must return, in order."""

    sql: str
    columns: tuple[str, ...]
    query_type: QueryType = "table"


@dataclass(frozen=True)
class PromQuery:
    expr: str
    legend: str = ""


@dataclass(frozen=True)
class Panel:
    key: str  # unique across dashboards: tests and the report look panels up by it
    title: str
    type: str  # Grafana panel plugin id
    description: str
    clickhouse: ClickHouseQuery | None = None
    prometheus: tuple[PromQuery, ...] = ()
    width: int = 12
    height: int = 8
    unit: str | None = None
    link_column: str | None = None  # a table column holding a URL, rendered as a link
    options: JSON = field(default_factory=dict)
    custom: JSON = field(default_factory=dict)  # fieldConfig.defaults.custom


@dataclass(frozen=True)
class Row:
    title: str
    panels: tuple[Panel, ...]


@dataclass(frozen=True)
class Variable:
    name: str
    model: JSON  # the templating.list entry, minus "name"


@dataclass(frozen=True)
class Dashboard:
    uid: str
    title: str
    description: str
    filename: str
    variables: tuple[Variable, ...]
    rows: tuple[Row, ...]
    time_from: str = "now-6h"
    refresh: str = "30s"

    @property
    def panels(self) -> Iterator[Panel]:
        for row in self.rows:
            yield from row.panels
