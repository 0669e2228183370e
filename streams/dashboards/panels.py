"""Panel builders (stat, time series, table, Prometheus, quantiles) that every dashboard uses, so
panels of one kind are built the same way; and `metric_names`, which reads a PromQL expression back.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from streams.dashboards.model import ClickHouseQuery, Panel, PromQuery


def _named_query_sql(name: str, replacements: dict[str, str]) -> str:
    """A named query's SQL (schemas/queries/) with its parameter conditions replaced by Grafana
    macros, so the panel and `streams query NAME` run the same SQL. Every fragment must be found
    and no `{param:Type}` may be left: editing the query then fails the build, not the panel."""
    from streams.queries import load_query

    sql = load_query(name).sql
    rest = sql
    for fragment in replacements:
        if fragment not in sql:
            raise ValueError(f"named query {name}: {fragment!r} not found (update streams/dashboards/)")
        rest = rest.replace(fragment, "")
    left = re.findall(r"\{\w+:[^{}]+\}", rest)
    if left:
        raise ValueError(f"named query {name}: parameters {left} have no Grafana replacement")
    for fragment, grafana in replacements.items():
        sql = sql.replace(fragment, grafana)
    return sql


def _stat(key: str, title: str, description: str, sql: str, column: str, unit: str | None = None) -> Panel:
    return Panel(
        key,
        title,
        "stat",
        description,
        ClickHouseQuery(sql, (column,)),
        width=6,
        height=4,
        unit=unit,
        options={
            "reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False},
            "colorMode": "value",
            "graphMode": "none",
            "textMode": "auto",
        },
    )


def _timeseries(
    key: str,
    title: str,
    description: str,
    sql: str,
    columns: tuple[str, ...],
    unit: str | None = None,
    width: int = 12,
    stacked: bool = False,
) -> Panel:
    return Panel(
        key,
        title,
        "timeseries",
        description,
        ClickHouseQuery(sql, columns, "timeseries"),
        width=width,
        unit=unit,
        options={"legend": {"displayMode": "list", "placement": "bottom"}, "tooltip": {"mode": "multi"}},
        custom={"fillOpacity": 15, "stacking": {"mode": "normal" if stacked else "none", "group": "A"}},
    )


def _table(
    key: str,
    title: str,
    description: str,
    sql: str,
    columns: tuple[str, ...],
    width: int = 12,
    height: int = 8,
    link_column: str | None = None,
) -> Panel:
    return Panel(
        key,
        title,
        "table",
        description,
        ClickHouseQuery(sql, columns),
        width=width,
        height=height,
        link_column=link_column,
        options={"showHeader": True, "cellHeight": "sm", "footer": {"show": False}},
    )


def _prom(
    key: str, title: str, description: str, *queries: PromQuery, unit: str | None = None, width: int = 12
) -> Panel:
    return Panel(
        key,
        title,
        "timeseries",
        description,
        prometheus=queries,
        width=width,
        unit=unit,
        options={"legend": {"displayMode": "table", "placement": "right", "calcs": ["lastNotNull", "max"]}},
        custom={"fillOpacity": 10},
    )


def _quantiles(
    metric: str, by: str, legend: str, quantiles: Sequence[float] = (0.5, 0.95, 0.99), selector: str = ""
) -> list[PromQuery]:
    matchers = f"{{{selector}}}" if selector else ""
    return [
        PromQuery(
            f"histogram_quantile({q}, sum by (le, {by}) (rate({metric}_bucket{matchers}[$__rate_interval])))",
            f"p{round(q * 100)} {legend}",
        )
        for q in quantiles
    ]


# PromQL words that look like metric names but are not.
_PROMQL_WORDS = {
    "by", "without", "on", "ignoring", "group_left", "group_right", "bool", "offset", "and", "or", "unless",
    "inf", "nan", "atan2",
}  # fmt: skip


def metric_names(expr: str) -> set[str]:
    """Metric names referenced by a PromQL expression (functions, labels and keywords left out)."""
    # Grafana's label_values(metric, label) variable query: only the metric is a name.
    text = re.sub(r"\blabel_values\(\s*([^,()]+?)\s*,\s*\w+\s*\)", r"\1", expr)
    text = re.sub(r'"(?:\\.|[^"\\])*"', '""', text)  # string literals
    text = re.sub(r"\{[^}]*\}", " ", text)  # label matchers
    text = re.sub(r"\[[^\]]*\]", " ", text)  # range selectors
    text = re.sub(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", text)
    names = set()
    # Not preceded by a digit or dot: the "m" of a duration like 5m is no name.
    for match in re.finditer(r"(?<![\w.])[A-Za-z_:][A-Za-z0-9_:]*", text):
        rest = text[match.end() :].lstrip()
        if rest.startswith("("):
            continue  # a function or aggregation
        if match[0] in _PROMQL_WORDS:
            continue
        names.add(match[0])
    return names
