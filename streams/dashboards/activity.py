"""The comment activity dashboard: volume, busiest threads and authors, reply depth, languages
(ClickHouse).
"""

from __future__ import annotations

from streams.dashboards.model import ClickHouseQuery, Dashboard, Panel, Row
from streams.dashboards.panels import _stat, _table, _timeseries
from streams.dashboards.variables import _THREAD, DATASOURCE_VAR, THREAD_VAR


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
