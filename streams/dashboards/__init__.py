"""Grafana dashboards for comment-streams, generated from code so every panel is built the same way.

    python -m streams.dashboards --write   # regenerate dashboards/*.json
    python -m streams.dashboards --check   # exit 1 when the committed JSON is not what this builds

Three dashboards: comment activity and flagged content (ClickHouse, through the official
grafana-clickhouse-datasource plugin), pipeline health (Prometheus, plus two ClickHouse tables).
Panels reach their datasource only through the `${datasource}` / `${prometheus}` variables, so the
provisioned uids (dashboards/provisioning/datasources/datasources.yaml) are only defaults.

Every ClickHouse panel declares the columns it returns; tests/integration/test_dashboard_queries.py
expands each query with `streams.grafana_macros.expand` and runs it on seeded data, and the report
(`streams.report`) renders the same SQL, so Grafana and the report agree.

Macro usage is kept portable across plugin/SDK versions: macro arguments hold no commas, and a
macro without arguments is never followed by '(' before ')' (older grafana-plugin-sdk-go versions
searched past the name for an argument list).

Modules: `model` (the dataclasses and datasource constants), `variables` (template variables and
the filters on them), `panels` (panel builders), `activity` / `flagged` / `pipeline` (one dashboard
each), `catalog` (the list of dashboards, panel lookups), `render` (Grafana JSON) and `cli`
(writing and checking dashboards/*.json). Their public names are importable from here.
"""

from streams.dashboards.catalog import clickhouse_panels, dashboards, panel
from streams.dashboards.cli import main, stale, write
from streams.dashboards.model import (
    CLICKHOUSE_TYPE,
    CLICKHOUSE_UID,
    DASHBOARDS_DIR,
    FLAG_CATEGORIES,
    JSON,
    PLUGIN_VERSION,
    PROMETHEUS_TYPE,
    PROMETHEUS_UID,
    TAG,
    ClickHouseQuery,
    Dashboard,
    Panel,
    PromQuery,
    QueryType,
    Row,
    Variable,
)
from streams.dashboards.panels import metric_names
from streams.dashboards.render import render, to_json
from streams.dashboards.variables import (
    AGENT_QUERY,
    AGENT_VAR,
    AUTHOR_VAR,
    CATEGORY_VAR,
    DATASOURCE_VAR,
    PROMETHEUS_VAR,
    THREAD_VAR,
)

__all__ = [
    "AGENT_QUERY",
    "AGENT_VAR",
    "AUTHOR_VAR",
    "CATEGORY_VAR",
    "CLICKHOUSE_TYPE",
    "CLICKHOUSE_UID",
    "DASHBOARDS_DIR",
    "DATASOURCE_VAR",
    "FLAG_CATEGORIES",
    "JSON",
    "PLUGIN_VERSION",
    "PROMETHEUS_TYPE",
    "PROMETHEUS_UID",
    "PROMETHEUS_VAR",
    "TAG",
    "THREAD_VAR",
    "ClickHouseQuery",
    "Dashboard",
    "Panel",
    "PromQuery",
    "QueryType",
    "Row",
    "Variable",
    "clickhouse_panels",
    "dashboards",
    "main",
    "metric_names",
    "panel",
    "render",
    "stale",
    "to_json",
    "write",
]
