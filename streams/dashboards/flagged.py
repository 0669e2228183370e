"""The flagged content dashboard: flags by category, toxicity, detector alerts, the most flagged
threads, authors and comments (ClickHouse).
"""

from __future__ import annotations

from streams.dashboards.model import ClickHouseQuery, Dashboard, Panel, Row
from streams.dashboards.panels import _named_query_sql, _stat, _table, _timeseries
from streams.dashboards.variables import _AUTHOR, _FLAGGED, AUTHOR_VAR, CATEGORY_VAR, DATASOURCE_VAR


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
