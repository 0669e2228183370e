"""The dashboards' template variables (datasources, thread, author, category, agent) and the SQL
filters on them that panels share.
"""

from __future__ import annotations

from streams.dashboards.model import (
    CLICKHOUSE_TYPE,
    CLICKHOUSE_UID,
    FLAG_CATEGORIES,
    PROMETHEUS_TYPE,
    PROMETHEUS_UID,
    Variable,
)

_ALL_SELECTED = {"selected": True, "text": ["All"], "value": ["$__all"]}


def _datasource_variable(name: str, label: str, plugin: str, uid: str) -> Variable:
    return Variable(
        name,
        {
            "type": "datasource",
            "label": label,
            "query": plugin,
            "current": {"selected": False, "text": label, "value": uid},
            "hide": 0,
            "includeAll": False,
            "multi": False,
            "options": [],
            "refresh": 1,
            "regex": "",
            "skipUrlSync": False,
        },
    )


def _clickhouse_query_variable(name: str, label: str, sql: str) -> Variable:
    # Saved as the plugin's variable query model (CHVariableSupport): {queryType: "sql", rawSql}.
    # One column only: newer plugin versions keep just the text of each value.
    return Variable(
        name,
        {
            "type": "query",
            "label": label,
            "datasource": {"type": CLICKHOUSE_TYPE, "uid": "${datasource}"},
            "query": {"refId": f"{name}-variable", "queryType": "sql", "rawSql": sql},
            "definition": sql,
            "current": _ALL_SELECTED,
            "hide": 0,
            "includeAll": True,
            "multi": True,
            "options": [],
            "refresh": 2,  # on time range change
            "regex": "",
            "skipUrlSync": False,
            "sort": 0,
        },
    )


DATASOURCE_VAR = _datasource_variable("datasource", "ClickHouse", CLICKHOUSE_TYPE, CLICKHOUSE_UID)
PROMETHEUS_VAR = _datasource_variable("prometheus", "Prometheus", PROMETHEUS_TYPE, PROMETHEUS_UID)

THREAD_VAR = _clickhouse_query_variable(
    "thread",
    "Thread",
    "SELECT thread_id FROM comments FINAL WHERE $__timeFilter(posted_at) "
    "GROUP BY thread_id ORDER BY count() DESC, thread_id LIMIT 500",
)
AUTHOR_VAR = _clickhouse_query_variable(
    "author",
    "Flagged author",
    "SELECT author FROM comments FINAL WHERE $__timeFilter(posted_at) AND notEmpty(flags) "
    "GROUP BY author ORDER BY count() DESC, author LIMIT 500",
)
CATEGORY_VAR = Variable(
    "category",
    {
        "type": "custom",
        "label": "Flag category",
        "query": ",".join(FLAG_CATEGORIES),
        "current": _ALL_SELECTED,
        "hide": 0,
        "includeAll": True,
        "multi": True,
        "options": [{"selected": True, "text": "All", "value": "$__all"}]
        + [{"selected": False, "text": c, "value": c} for c in FLAG_CATEGORIES],
        "skipUrlSync": False,
    },
)
AGENT_QUERY = "label_values(streams_events_in_total, agent)"
AGENT_VAR = Variable(
    "agent",
    {
        "type": "query",
        "label": "Agent",
        "datasource": {"type": PROMETHEUS_TYPE, "uid": "${prometheus}"},
        "query": {"query": AGENT_QUERY, "refId": "PrometheusVariableQueryEditor-VariableQuery", "qryType": 1},
        "definition": AGENT_QUERY,
        "current": _ALL_SELECTED,
        "allValue": ".*",
        "hide": 0,
        "includeAll": True,
        "multi": True,
        "options": [],
        "refresh": 2,
        "regex": "",
        "skipUrlSync": False,
        "sort": 1,
    },
)

# Filters on the variables. $__conditionalAll drops the condition (1=1) when All is selected.
_THREAD = "$__conditionalAll(thread_id IN (${thread:singlequote}), $thread)"
_AUTHOR = "$__conditionalAll(author IN (${author:singlequote}), $author)"
_CATEGORY = "$__conditionalAll(hasAny(flags, [${category:singlequote}]), $category)"
_FLAGGED = f"notEmpty(flags) AND {_CATEGORY}"
