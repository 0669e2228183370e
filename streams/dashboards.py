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
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
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
# sqlutil.FormatQueryOption, as the plugin's mapQueryTypeToGrafanaFormat sets it.
_FORMAT: dict[QueryType, int] = {"timeseries": 0, "table": 1}

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


# ---------------------------------------------------------------------------------------- variables

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


# ------------------------------------------------------------------------------------- panel helpers


def _named_query_sql(name: str, replacements: dict[str, str]) -> str:
    """A named query's SQL (schemas/queries/) with its parameter conditions replaced by Grafana
    macros, so the panel and `streams query NAME` run the same SQL. Every fragment must be found
    and no `{param:Type}` may be left: editing the query then fails the build, not the panel."""
    from streams.queries import load_query

    sql = load_query(name).sql
    rest = sql
    for fragment in replacements:
        if fragment not in sql:
            raise ValueError(f"named query {name}: {fragment!r} not found (update streams/dashboards.py)")
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


# --------------------------------------------------------------------------------------- dashboards


def _activity() -> Dashboard:
    where = f"$__timeFilter(posted_at) AND {_THREAD}"
    overview = Row(
        "Overview",
        (
            _stat(
                "activity_comments",
                "Comments",
                "Comments posted in the time range (latest version of each, deletions excluded).",
                f"SELECT count() AS comments FROM comments FINAL WHERE {where}",
                "comments",
            ),
            _stat(
                "activity_active_threads",
                "Active threads",
                "Threads with at least one comment in the time range.",
                f"SELECT uniqExact(thread_id) AS active_threads FROM comments FINAL WHERE {where}",
                "active_threads",
            ),
            _stat(
                "activity_active_authors",
                "Active authors",
                "Distinct authors who commented in the time range.",
                f"SELECT uniqExact(author) AS active_authors FROM comments FINAL WHERE {where}",
                "active_authors",
            ),
            _stat(
                "activity_flagged_share",
                "Flagged share",
                "Share of the comments with at least one moderation flag.",
                "SELECT countIf(notEmpty(flags)) / greatest(count(), 1) AS flagged_share "
                f"FROM comments FINAL WHERE {where}",
                "flagged_share",
                unit="percentunit",
            ),
        ),
    )
    activity = Row(
        "Activity",
        (
            _timeseries(
                "comments_per_minute",
                "Comments per minute",
                "Comments per minute, averaged over each interval bucket; quiet buckets show as 0.",
                f"""SELECT $__timeInterval(posted_at) AS time, count() * 60 / ($__interval_s) AS comments_per_minute
FROM comments FINAL
WHERE {where}
GROUP BY time
ORDER BY time WITH FILL STEP ($__interval_s)""",
                ("time", "comments_per_minute"),
                unit="short",
            ),
            _timeseries(
                "active_threads_authors",
                "Active threads and authors",
                "Distinct threads and authors with a comment in each interval bucket.",
                f"""SELECT $__timeInterval(posted_at) AS time,
       uniqExact(thread_id) AS active_threads,
       uniqExact(author) AS active_authors
FROM comments FINAL
WHERE {where}
GROUP BY time
ORDER BY time""",
                ("time", "active_threads", "active_authors"),
            ),
            _table(
                "top_threads_velocity",
                "Top threads by velocity",
                "From the thread_trend_10m windows: comments per minute in the latest window, its change "
                "from the window before (acceleration), and the peak in the time range.",
                """SELECT w.key AS thread_id,
       any(t.thread_title) AS title,
       round(toFloat64(argMax(w.velocity, w.window_start)), 2) AS velocity,
       round(toFloat64(argMax(w.acceleration, w.window_start)), 2) AS acceleration,
       round(toFloat64(max(w.velocity)), 2) AS peak_velocity,
       count() AS windows
FROM activity_windows AS w FINAL
LEFT JOIN
(
    SELECT thread_id, any(thread_title) AS thread_title FROM comments FINAL GROUP BY thread_id
) AS t ON t.thread_id = w.key
WHERE w.kind = 'thread_trend_10m' AND $__timeFilter(w.window_start)
  AND $__conditionalAll(w.key IN (${thread:singlequote}), $thread)
GROUP BY thread_id
ORDER BY velocity DESC, peak_velocity DESC, thread_id
LIMIT 10""",
                ("thread_id", "title", "velocity", "acceleration", "peak_velocity", "windows"),
            ),
            _timeseries(
                "thread_velocity",
                "Velocity of the fastest threads",
                "Comments per minute of the five threads with the highest peak velocity (thread_trend_10m).",
                """SELECT w.window_start AS time, w.key AS thread, w.velocity AS velocity
FROM activity_windows AS w FINAL
WHERE w.kind = 'thread_trend_10m' AND $__timeFilter(w.window_start)
  AND $__conditionalAll(w.key IN (${thread:singlequote}), $thread)
  AND w.key IN
  (
      SELECT key FROM activity_windows FINAL
      WHERE kind = 'thread_trend_10m' AND $__timeFilter(window_start)
      GROUP BY key ORDER BY max(velocity) DESC, key LIMIT 5
  )
ORDER BY time, thread""",
                ("time", "thread", "velocity"),
            ),
            _timeseries(
                "new_vs_returning_authors",
                "New vs returning authors",
                "Authors per bucket: new ones posted their first comment ever in that bucket.",
                """SELECT $__timeInterval(c.posted_at) AS time,
       uniqExactIf(c.author, f.first_seen >= time) AS new_authors,
       uniqExactIf(c.author, f.first_seen < time) AS returning_authors
FROM comments AS c FINAL
INNER JOIN
(
    SELECT author, min(posted_at) AS first_seen FROM comments FINAL GROUP BY author
) AS f ON f.author = c.author
WHERE $__timeFilter(c.posted_at) AND $__conditionalAll(c.thread_id IN (${thread:singlequote}), $thread)
GROUP BY time
ORDER BY time""",
                ("time", "new_authors", "returning_authors"),
                stacked=True,
            ),
            _table(
                "bursty_authors",
                "Burstiest authors",
                "From the author_1m windows: the most comments an author posted in one minute.",
                """SELECT key AS author,
       max(comments) AS peak_per_minute,
       sum(comments) AS total_comments,
       countIf(flagged_comments > 0) AS flagged_minutes
FROM activity_windows FINAL
WHERE kind = 'author_1m' AND $__timeFilter(window_start)
GROUP BY author
ORDER BY peak_per_minute DESC, total_comments DESC, author
LIMIT 10""",
                ("author", "peak_per_minute", "total_comments", "flagged_minutes"),
            ),
        ),
    )
    shape = Row(
        "Shape of the conversation",
        (
            Panel(
                "reply_depth",
                "Reply-depth distribution",
                "barchart",
                "Comments by depth in their thread: 0 is a top-level comment, 1 a reply to it, and so on.",
                ClickHouseQuery(
                    f"""SELECT if(depth >= 8, '8+', toString(depth)) AS reply_depth, count() AS comments
FROM comments FINAL
WHERE {where}
GROUP BY reply_depth
ORDER BY min(depth)""",
                    ("reply_depth", "comments"),
                ),
                options={"orientation": "vertical", "xField": "reply_depth", "showValue": "auto"},
            ),
            Panel(
                "language_mix",
                "Language mix",
                "piechart",
                "Comments by detected language (ISO 639-1; 'und' when detection was not confident).",
                ClickHouseQuery(
                    f"""SELECT if(language = '', 'und', language) AS lang, count() AS comments
FROM comments FINAL
WHERE {where}
GROUP BY lang
ORDER BY comments DESC, lang
LIMIT 12""",
                    ("lang", "comments"),
                ),
                options={
                    "reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": True},
                    "pieType": "donut",
                    "legend": {"displayMode": "table", "placement": "right", "values": ["value", "percent"]},
                },
            ),
        ),
    )
    return Dashboard(
        "comment-activity",
        "Comment activity",
        "Live activity across comment threads: volume, threads and authors, velocity, depth and languages.",
        "comment-activity.json",
        (DATASOURCE_VAR, THREAD_VAR),
        (overview, activity, shape),
    )


def _flagged() -> Dashboard:
    overview = Row(
        "Overview",
        (
            _stat(
                "flagged_comments",
                "Flagged comments",
                "Comments with a flag in the selected categories.",
                f"SELECT countIf({_FLAGGED}) AS flagged FROM comments FINAL "
                f"WHERE $__timeFilter(posted_at) AND {_AUTHOR}",
                "flagged",
            ),
            _stat(
                "flagged_comment_share",
                "Flagged share",
                "Flagged comments (selected categories) over all comments.",
                f"SELECT countIf({_FLAGGED}) / greatest(count(), 1) AS flagged_share FROM comments FINAL "
                "WHERE $__timeFilter(posted_at)",
                "flagged_share",
                unit="percentunit",
            ),
            _stat(
                "flagged_authors",
                "Flagged authors",
                "Authors with at least one flagged comment (selected categories).",
                f"SELECT uniqExactIf(author, {_FLAGGED}) AS flagged_authors FROM comments FINAL "
                "WHERE $__timeFilter(posted_at)",
                "flagged_authors",
            ),
            _stat(
                "alert_count",
                "Detector alerts",
                "Alerts raised by the detectors for windows in the time range.",
                "SELECT count() AS alerts FROM alerts FINAL WHERE $__timeFilter(window_start)",
                "alerts",
            ),
        ),
    )
    trends = Row(
        "Trends",
        (
            _timeseries(
                "flag_rate_by_category",
                "Flag rate by category",
                "Share of all comments in each bucket that were flagged in each category.",
                """SELECT t.time AS time, t.category AS category, t.flagged / b.total AS flag_rate
FROM
(
    SELECT $__timeInterval(posted_at) AS time, arrayJoin(flags) AS category, count() AS flagged
    FROM comments FINAL
    WHERE $__timeFilter(posted_at)
    GROUP BY time, category
) AS t
INNER JOIN
(
    SELECT $__timeInterval(posted_at) AS time, count() AS total
    FROM comments FINAL
    WHERE $__timeFilter(posted_at)
    GROUP BY time
) AS b ON b.time = t.time
WHERE $__conditionalAll(t.category IN (${category:singlequote}), $category)
ORDER BY time, category""",
                ("time", "category", "flag_rate"),
                unit="percentunit",
            ),
            Panel(
                "flags_by_category",
                "Flagged comments by category",
                "barchart",
                "A comment flagged in two categories counts in both.",
                ClickHouseQuery(
                    f"""SELECT arrayJoin(flags) AS category, count() AS flagged
FROM comments FINAL
WHERE $__timeFilter(posted_at) AND {_AUTHOR}
GROUP BY category
HAVING $__conditionalAll(category IN (${{category:singlequote}}), $category)
ORDER BY flagged DESC, category""",
                    ("category", "flagged"),
                ),
                options={"orientation": "horizontal", "xField": "category", "showValue": "auto"},
            ),
            Panel(
                "toxicity_distribution",
                "Toxicity score distribution",
                "barchart",
                "Comments by toxicity score, in steps of 0.1.",
                ClickHouseQuery(
                    f"""SELECT toString(least(floor(toxicity * 10) / 10, 0.9)) AS toxicity_bucket, count() AS comments
FROM comments FINAL
WHERE $__timeFilter(posted_at) AND {_AUTHOR}
GROUP BY toxicity_bucket
ORDER BY toxicity_bucket""",
                    ("toxicity_bucket", "comments"),
                ),
                options={"orientation": "vertical", "xField": "toxicity_bucket", "showValue": "never"},
            ),
            _timeseries(
                "alerts_by_detector",
                "Alerts by detector",
                "Detector alerts per bucket of their window start.",
                """SELECT $__timeInterval(window_start) AS time, detector, count() AS alerts
FROM alerts FINAL
WHERE $__timeFilter(window_start)
GROUP BY time, detector
ORDER BY time, detector""",
                ("time", "detector", "alerts"),
                stacked=True,
            ),
        ),
    )
    who = Row(
        "Who and where",
        (
            _table(
                "top_flagged_threads",
                "Top flagged threads",
                "Threads with the most flagged comments (selected categories).",
                f"""SELECT thread_id,
       any(thread_title) AS title,
       countIf({_FLAGGED}) AS flagged,
       count() AS comments,
       round(flagged / comments, 3) AS flagged_share,
       round(toFloat64(max(toxicity)), 2) AS max_toxicity,
       arrayStringConcat(arraySort(groupUniqArrayArray(flags)), ', ') AS categories
FROM comments FINAL
WHERE $__timeFilter(posted_at) AND {_AUTHOR}
GROUP BY thread_id
HAVING flagged > 0
ORDER BY flagged DESC, flagged_share DESC, thread_id
LIMIT 10""",
                (
                    "thread_id",
                    "title",
                    "flagged",
                    "comments",
                    "flagged_share",
                    "max_toxicity",
                    "categories",
                ),
            ),
            _table(
                "top_flagged_authors",
                "Top flagged authors",
                "Authors with the most flagged comments (selected categories).",
                f"""SELECT author,
       countIf({_FLAGGED}) AS flagged,
       count() AS comments,
       round(flagged / comments, 3) AS flagged_share,
       uniqExact(thread_id) AS threads,
       round(toFloat64(max(toxicity)), 2) AS max_toxicity,
       arrayStringConcat(arraySort(groupUniqArrayArray(flags)), ', ') AS categories
FROM comments FINAL
WHERE $__timeFilter(posted_at) AND {_AUTHOR}
GROUP BY author
HAVING flagged > 0
ORDER BY flagged DESC, flagged_share DESC, author
LIMIT 10""",
                ("author", "flagged", "comments", "flagged_share", "threads", "max_toxicity", "categories"),
            ),
            _table(
                "latest_flagged_comments",
                "Latest flagged comments",
                "Newest flagged comments with the reasons each category fired and a link to the comment.",
                f"""SELECT posted_at AS time,
       thread_title AS thread,
       author,
       arrayStringConcat(flags, ', ') AS categories,
       arrayStringConcat(
           arrayMap(k -> concat(k, ': ', arrayStringConcat(reasons[k], '; ')), arraySort(mapKeys(reasons))),
           ' | '
       ) AS why,
       round(toFloat64(toxicity), 2) AS toxicity_score,
       substring(body, 1, 200) AS excerpt,
       coalesce(url, '') AS link,
       comment_id
FROM comments FINAL
WHERE $__timeFilter(posted_at) AND {_FLAGGED} AND {_AUTHOR}
ORDER BY posted_at DESC, comment_id
LIMIT 50""",
                (
                    "time",
                    "thread",
                    "author",
                    "categories",
                    "why",
                    "toxicity_score",
                    "excerpt",
                    "link",
                    "comment_id",
                ),
                width=24,
                height=10,
                link_column="link",
            ),
            _table(
                "review_precision_recall",
                "Review precision and recall",
                "Moderators' verdicts (`streams review`) per day, category and model version: precision = "
                "confirmed / (confirmed + rejected), recall = confirmed / (confirmed + missed). "
                "The named query review_precision_recall.",
                _named_query_sql(
                    "review_precision_recall",
                    {
                        "reviewed_at >= {since:DateTime64(3, 'UTC')} AND reviewed_at <= {until:DateTime64(3, 'UTC')}": (
                            "$__timeFilter(reviewed_at)"
                        ),
                        "({category:String} = '' OR category = {category:String})": (
                            "$__conditionalAll(category IN (${category:singlequote}), $category)"
                        ),
                    },
                ),
                ("day", "category", "model_version", "confirmed", "rejected", "missed", "precision", "recall"),
                width=24,
            ),
            _table(
                "detector_alerts",
                "Detector alerts",
                "Alerts raised by the detectors, most severe first, with the evidence that made them fire.",
                """SELECT detected_at AS time,
       detector,
       round(toFloat64(severity), 2) AS severity_score,
       thread_id,
       author,
       summary,
       window_start,
       window_end,
       evidence
FROM alerts FINAL
WHERE $__timeFilter(window_start)
ORDER BY severity DESC, detected_at DESC, alert_id
LIMIT 50""",
                (
                    "time",
                    "detector",
                    "severity_score",
                    "thread_id",
                    "author",
                    "summary",
                    "window_start",
                    "window_end",
                    "evidence",
                ),
                width=24,
            ),
        ),
    )
    return Dashboard(
        "flagged-content",
        "Flagged content",
        "Moderation flags by category, the threads and authors they concentrate on, and detector alerts.",
        "flagged-content.json",
        (DATASOURCE_VAR, CATEGORY_VAR, AUTHOR_VAR),
        (overview, trends, who),
    )


def _pipeline() -> Dashboard:
    agent = 'agent=~"$agent"'
    throughput = Row(
        "Throughput",
        (
            _prom(
                "events_in",
                "Events in per agent",
                "Messages each agent received per second.",
                PromQuery(f"sum by (agent) (rate(streams_events_in_total{{{agent}}}[$__rate_interval]))", "{{agent}}"),
                unit="ops",
            ),
            _prom(
                "events_out",
                "Events out per agent",
                "Messages each agent produced per second, by target topic.",
                PromQuery(
                    f"sum by (agent, topic) (rate(streams_events_out_total{{{agent}}}[$__rate_interval]))",
                    "{{agent}} → {{topic}}",
                ),
                unit="ops",
            ),
            _prom(
                "events_failed",
                "Failed events",
                "Messages an agent could not process, by reason code.",
                PromQuery(
                    f"sum by (agent, reason) (rate(streams_events_failed_total{{{agent}}}[$__rate_interval]))",
                    "{{agent}}: {{reason}}",
                ),
                unit="ops",
            ),
            _prom(
                "rows_inserted",
                "Rows inserted into ClickHouse",
                "Rows per second written by the sink, by table.",
                PromQuery("sum by (table) (rate(streams_clickhouse_rows_total[$__rate_interval]))", "{{table}}"),
                unit="rowsps",
            ),
        ),
    )
    latency = Row(
        "Latency and batches",
        (
            _prom(
                "processing_latency",
                "Processing latency",
                "Time an agent spends on one message (one batch for the sink).",
                *_quantiles("streams_processing_seconds", "agent", "{{agent}}", selector=agent),
                unit="s",
            ),
            _prom(
                "end_to_end_latency",
                "End-to-end latency",
                "From a message's Kafka timestamp to its row being in ClickHouse.",
                *_quantiles("streams_end_to_end_seconds", "table", "{{table}}", (0.5, 0.95)),
                unit="s",
            ),
            _prom(
                "insert_latency",
                "ClickHouse insert latency",
                "Duration of one insert, by table.",
                *_quantiles("streams_clickhouse_insert_seconds", "table", "{{table}}", (0.5, 0.95)),
                unit="s",
            ),
            _prom(
                "batch_size",
                "Sink batch size",
                "Rows per sink batch: median, p95 and mean.",
                *_quantiles("streams_batch_size", "agent", "{{agent}}", (0.5, 0.95), selector=agent),
                PromQuery(
                    f"sum by (agent) (rate(streams_batch_size_sum{{{agent}}}[$__rate_interval])) / "
                    f"sum by (agent) (rate(streams_batch_size_count{{{agent}}}[$__rate_interval]))",
                    "mean {{agent}}",
                ),
                unit="short",
            ),
        ),
    )
    backlog = Row(
        "Backlog and errors",
        (
            _prom(
                "consumer_lag",
                "Consumer lag",
                "Messages between the committed offset and the end of each topic.",
                PromQuery("sum by (topic) (streams_consumer_lag)", "{{topic}}"),
                unit="short",
            ),
            _prom(
                "watermark_age",
                "Event-time watermark age",
                "How far each partition's watermark is behind the wall clock (large during a replay).",
                PromQuery("time() - max by (partition) (streams_window_watermark_seconds)", "partition {{partition}}"),
                unit="s",
            ),
            _prom(
                "dead_letters",
                "Dead letters",
                "Messages sent to the dead-letter topic, by stage and reason.",
                PromQuery(
                    "sum by (stage, reason) (increase(streams_dead_letters_total[$__rate_interval]))",
                    "{{stage}}: {{reason}}",
                ),
                unit="short",
                width=8,
            ),
            _prom(
                "late_events",
                "Late events",
                "Comments too late for their (already expired) window, by window kind.",
                PromQuery("sum by (kind) (increase(streams_late_events_total[$__rate_interval]))", "{{kind}}"),
                unit="short",
                width=8,
            ),
            _prom(
                "insert_errors",
                "ClickHouse insert errors",
                "Failed inserts (retried with backoff), by table.",
                PromQuery(
                    "sum by (table) (increase(streams_clickhouse_insert_errors_total[$__rate_interval]))", "{{table}}"
                ),
                unit="short",
                width=8,
            ),
        ),
    )
    outputs = Row(
        "Outputs",
        (
            _prom(
                "flags_rate",
                "Flags raised",
                "Comments flagged per second, by category.",
                PromQuery("sum by (category) (rate(streams_flags_total[$__rate_interval]))", "{{category}}"),
                unit="ops",
                width=8,
            ),
            _prom(
                "windows_emitted",
                "Windows emitted",
                "Window rows emitted per second (first versions and corrections), by kind.",
                PromQuery("sum by (kind) (rate(streams_windows_emitted_total[$__rate_interval]))", "{{kind}}"),
                unit="ops",
                width=8,
            ),
            _prom(
                "alerts_raised",
                "Alerts raised",
                "Detector alerts, by detector.",
                PromQuery("sum by (detector) (increase(streams_alerts_total[$__rate_interval]))", "{{detector}}"),
                PromQuery("max by (table) (streams_table_rows)", "rows in {{table}}"),
                unit="short",
                width=8,
            ),
        ),
    )
    clickhouse = Row(
        "Dead letters and late events in ClickHouse",
        (
            _table(
                "latest_dead_letters",
                "Latest dead letters",
                "Input no stage could accept, newest first, with where it was read from.",
                """SELECT received_at AS time,
       stage,
       reason_code,
       reason,
       source_topic,
       source_partition,
       source_offset,
       substring(raw, 1, 200) AS raw_excerpt
FROM dead_letters FINAL
WHERE $__timeFilter(received_at)
ORDER BY received_at DESC, dead_letter_id
LIMIT 50""",
                (
                    "time",
                    "stage",
                    "reason_code",
                    "reason",
                    "source_topic",
                    "source_partition",
                    "source_offset",
                    "raw_excerpt",
                ),
                width=16,
            ),
            _table(
                "late_events_by_kind",
                "Late events by window kind",
                "Comments that arrived after their window closed for good, and by how much.",
                """SELECT window_kind,
       count() AS late_events,
       max(dateDiff('second', posted_at, watermark)) AS max_lateness_s,
       max(received_at) AS last_seen
FROM late_events FINAL
WHERE $__timeFilter(received_at)
GROUP BY window_kind
ORDER BY late_events DESC, window_kind""",
                ("window_kind", "late_events", "max_lateness_s", "last_seen"),
                width=8,
            ),
        ),
    )
    return Dashboard(
        "pipeline-health",
        "Pipeline health",
        "Agents' throughput, latency, lag, batches and inserts (Prometheus), dead letters and late events.",
        "pipeline-health.json",
        (PROMETHEUS_VAR, DATASOURCE_VAR, AGENT_VAR),
        (throughput, latency, backlog, outputs, clickhouse),
        time_from="now-1h",
        refresh="10s",
    )


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


# ---------------------------------------------------------------------------------------- rendering


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


def write(directory: Path = DASHBOARDS_DIR) -> list[Path]:
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for dashboard in dashboards():
        path = directory / dashboard.filename
        path.write_text(to_json(dashboard), encoding="utf-8")
        written.append(path)
    return written


def stale(directory: Path = DASHBOARDS_DIR) -> list[Path]:
    """Dashboard files that are missing or differ from what the builder generates."""
    out = []
    for dashboard in dashboards():
        path = directory / dashboard.filename
        if not path.exists() or path.read_text(encoding="utf-8") != to_json(dashboard):
            out.append(path)
    return out


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


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m streams.dashboards", description=(__doc__ or "").split("\n\n")[0])
    mode = parser.add_mutually_exclusive_group(required=True)
    mode.add_argument("--write", action="store_true", help="regenerate dashboards/*.json")
    mode.add_argument("--check", action="store_true", help="fail when dashboards/*.json are not current")
    parser.add_argument("--dir", type=Path, default=DASHBOARDS_DIR, help="dashboards directory")
    args = parser.parse_args(argv)
    if args.write:
        for path in write(args.dir):
            print(f"wrote {path}")
        return 0
    out_of_date = stale(args.dir)
    for path in out_of_date:
        print(f"{path} is not current: run `python -m streams.dashboards --write`", file=sys.stderr)
    return 1 if out_of_date else 0


if __name__ == "__main__":
    raise SystemExit(main())
