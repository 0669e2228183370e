"""A `Dashboard` as Grafana's JSON model: ids, grid layout, datasource references and targets."""

from __future__ import annotations

import json

from streams.dashboards.model import (
    CLICKHOUSE_TYPE,
    JSON,
    PLUGIN_VERSION,
    PROMETHEUS_TYPE,
    TAG,
    Dashboard,
    Panel,
    QueryType,
)

# sqlutil.FormatQueryOption, as the plugin's mapQueryTypeToGrafanaFormat sets it.
_FORMAT: dict[QueryType, int] = {"timeseries": 0, "table": 1}


def _datasource_ref(p: Panel) -> JSON:
    if p.clickhouse is not None:
        return {"type": CLICKHOUSE_TYPE, "uid": "${datasource}"}
    return {"type": PROMETHEUS_TYPE, "uid": "${prometheus}"}


def _targets(p: Panel) -> list[JSON]:
    ds = _datasource_ref(p)
    if p.clickhouse is not None:
        q = p.clickhouse
        return [
            {
                "refId": "A",
                "datasource": ds,
                "editorType": "sql",
                "format": _FORMAT[q.query_type],
                "queryType": q.query_type,
                "pluginVersion": PLUGIN_VERSION,
                "rawSql": q.sql,
            }
        ]
    return [
        {
            "refId": chr(ord("A") + i),
            "datasource": ds,
            "editorMode": "code",
            "expr": q.expr,
            "legendFormat": q.legend or "__auto",
            "range": True,
        }
        for i, q in enumerate(p.prometheus)
    ]


def _field_config(p: Panel) -> JSON:
    defaults: JSON = {"color": {"mode": "palette-classic"}}
    if p.unit:
        defaults["unit"] = p.unit
    if p.custom:
        defaults["custom"] = p.custom
    overrides: list[JSON] = []
    if p.link_column:
        overrides.append(
            {
                "matcher": {"id": "byName", "options": p.link_column},
                "properties": [
                    {"id": "links", "value": [{"title": "Open comment", "url": "${__value.raw}", "targetBlank": True}]}
                ],
            }
        )
    return {"defaults": defaults, "overrides": overrides}


def render(dashboard: Dashboard) -> JSON:
    """The dashboard JSON model, with ids and a left-to-right, top-to-bottom grid layout."""
    panels: list[JSON] = []
    next_id = 1
    y = 0
    for row in dashboard.rows:
        panels.append(
            {
                "id": next_id,
                "type": "row",
                "title": row.title,
                "collapsed": False,
                "gridPos": {"h": 1, "w": 24, "x": 0, "y": y},
                "panels": [],
            }
        )
        next_id += 1
        y += 1
        x = 0
        line_height = 0
        for p in row.panels:
            if x + p.width > 24:
                y += line_height
                x, line_height = 0, 0
            panels.append(
                {
                    "id": next_id,
                    "type": p.type,
                    "title": p.title,
                    "description": p.description,
                    "gridPos": {"h": p.height, "w": p.width, "x": x, "y": y},
                    "datasource": _datasource_ref(p),
                    "targets": _targets(p),
                    "fieldConfig": _field_config(p),
                    "options": p.options,
                }
            )
            next_id += 1
            x += p.width
            line_height = max(line_height, p.height)
        y += line_height
    return {
        "id": None,
        "uid": dashboard.uid,
        "title": dashboard.title,
        "description": dashboard.description,
        "tags": [TAG],
        "timezone": "utc",
        "editable": True,
        "graphTooltip": 1,
        "fiscalYearStartMonth": 0,
        "liveNow": False,
        "schemaVersion": 39,
        "version": 1,
        "refresh": dashboard.refresh,
        "time": {"from": dashboard.time_from, "to": "now"},
        "timepicker": {},
        "links": [
            {
                "type": "dashboards",
                "title": "comment-streams",
                "tags": [TAG],
                "asDropdown": True,
                "includeVars": False,
                "keepTime": True,
            }
        ],
        "annotations": {"list": []},
        "templating": {"list": [{"name": v.name, **v.model} for v in dashboard.variables]},
        "panels": panels,
    }


def to_json(dashboard: Dashboard) -> str:
    return json.dumps(render(dashboard), indent=2, ensure_ascii=False) + "\n"
