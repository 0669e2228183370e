"""A static report of the key dashboard panels: one self-contained HTML file, or one PNG image grid.

    render_report(client, since=timedelta(hours=6), until=None, out=Path("report.html"))

The report runs the dashboards' own SQL (`streams.dashboards`, expanded by
`streams.grafana_macros` with every variable on All), so it shows the numbers Grafana shows for the
same time range.

The time range is anchored on the data, not on the clock: it ends at `until`, or, without one, at
the latest `posted_at` in `comments`; it starts `since` before that end, or, without `since`, at the
earliest `posted_at`. So `since=timedelta(hours=1)` over the 2018 seed means the last hour of 2018
comments, not the last hour of today (which would be empty). All times are UTC.

HTML: summary figures, charts (comments per minute, flag rate by category, reply depths, language
mix) as base64 PNGs, and tables (top flagged threads and authors, latest flagged comments with
their reasons and a link, detector alerts). A path ending in `.png` gets the charts as one grid image.
"""

from __future__ import annotations

import base64
import html
import io
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
from clickhouse_connect.driver.client import Client
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.dates import AutoDateLocator, ConciseDateFormatter
from matplotlib.figure import Figure

from streams.dashboards import panel
from streams.grafana_macros import ALL, expand

__all__ = [
    "CHARTS",
    "REPORT_SUFFIXES",
    "TABLES",
    "ReportFormatError",
    "ReportWindow",
    "check_report_path",
    "render_report",
    "report_window",
]

#: Grafana's "All" for every variable the report's panels use.
_VARIABLES = {"thread": ALL, "category": ALL, "author": ALL}
#: Nice bucket sizes, as Grafana rounds its interval; the report aims at about 60 points per chart.
_INTERVALS = (60, 120, 300, 600, 900, 1200, 1800, 3600, 7200, 10800, 21600, 43200, 86400, 604800)
_TARGET_POINTS = 60
_STATS = (
    ("activity_comments", "Comments", "{:,.0f}"),
    ("activity_active_threads", "Active threads", "{:,.0f}"),
    ("activity_active_authors", "Active authors", "{:,.0f}"),
    ("activity_flagged_share", "Flagged share", "{:.1%}"),
    ("alert_count", "Detector alerts", "{:,.0f}"),
)


@dataclass(frozen=True)
class ReportWindow:
    start: datetime
    end: datetime
    interval_s: int
    latest_posted_at: datetime | None  # None: no comments at all

    def describe(self) -> str:
        anchored = self.latest_posted_at is not None and self.end == self.latest_posted_at
        anchor = ", ending at the latest comment" if anchored else ""
        return f"{_fmt_time(self.start)} – {_fmt_time(self.end)} UTC{anchor}; {self.interval_s} s buckets"


@dataclass(frozen=True)
class Result:
    columns: tuple[str, ...]
    rows: list[tuple[Any, ...]]

    def column(self, name: str) -> list[Any]:
        index = self.columns.index(name)
        return [row[index] for row in self.rows]


def _utc(t: datetime) -> datetime:
    return t.replace(tzinfo=UTC) if t.tzinfo is None else t.astimezone(UTC)


def _fmt_time(t: datetime | None) -> str:
    return "" if t is None else _utc(t).strftime("%Y-%m-%d %H:%M:%S")


def _interval_for(span: timedelta) -> int:
    wanted = span.total_seconds() / _TARGET_POINTS
    return next((i for i in _INTERVALS if i >= wanted), _INTERVALS[-1])


def report_window(client: Client, *, since: timedelta | None, until: datetime | None) -> ReportWindow:
    """The report's time range, anchored on the data (see the module docstring)."""
    count, earliest, latest = client.query(
        "SELECT count(), min(posted_at), max(posted_at) FROM comments FINAL"
    ).result_rows[0]
    latest_at = _utc(latest) if count else None
    end = _utc(until) if until is not None else (latest_at or datetime.now(UTC))
    if since is not None:
        start = end - since
    elif count:
        start = min(_utc(earliest), end)
    else:
        start = end - timedelta(days=1)
    return ReportWindow(start, end, _interval_for(end - start), latest_at)


def _run(client: Client, key: str, window: ReportWindow) -> Result:
    query = panel(key).clickhouse
    if query is None:
        raise ValueError(f"panel {key} is not a ClickHouse panel")
    sql = expand(
        query.sql, time_from=window.start, time_to=window.end, interval_s=window.interval_s, variables=_VARIABLES
    )
    result = client.query(sql)
    # An empty result may come back without column names; the panel declares them.
    return Result(tuple(result.column_names) or query.columns, [tuple(row) for row in result.result_rows])


# ------------------------------------------------------------------------------------------- charts


def _no_data(ax: Axes) -> None:
    ax.text(0.5, 0.5, "No data", ha="center", va="center", transform=ax.transAxes, color="#888")
    ax.set_xticks([])
    ax.set_yticks([])


def _time_axis(ax: Axes, times: np.ndarray[Any, np.dtype[np.datetime64]] | None = None) -> None:
    if times is not None and len(times) and times.min() == times.max():
        # One point: matplotlib would stretch a singular range over years; show the hour around it.
        ax.set_xlim(times.min() - np.timedelta64(30, "m"), times.max() + np.timedelta64(30, "m"))
    # matplotlib.dates has no type annotations (matplotlib ships .pyi stubs for other modules only).
    locator = AutoDateLocator()  # type: ignore[no-untyped-call]
    ax.xaxis.set_major_locator(locator)
    ax.xaxis.set_major_formatter(ConciseDateFormatter(locator))  # type: ignore[no-untyped-call]
    ax.grid(True, alpha=0.3)


def _times(values: Sequence[datetime]) -> np.ndarray[Any, np.dtype[np.datetime64]]:
    # numpy datetime64 (UTC, as ClickHouse returns naive UTC datetimes) is what matplotlib's date axis takes.
    return np.array([_utc(v).replace(tzinfo=None) for v in values], dtype="datetime64[ms]")


def _draw_comments_per_minute(ax: Axes, r: Result) -> None:
    if not r.rows:
        return _no_data(ax)
    times = _times(r.column("time"))
    ax.plot(times, r.column("comments_per_minute"), color="#3274d9", linewidth=1.5, marker="o", markersize=3)
    ax.fill_between(times, r.column("comments_per_minute"), alpha=0.15, color="#3274d9")
    ax.set_ylabel("comments / min")
    ax.set_ylim(bottom=0)
    _time_axis(ax, times)


def _draw_flag_rate(ax: Axes, r: Result) -> None:
    if not r.rows:
        return _no_data(ax)
    series: dict[str, tuple[list[datetime], list[float]]] = {}
    for time, category, rate in zip(r.column("time"), r.column("category"), r.column("flag_rate"), strict=True):
        times, rates = series.setdefault(category, ([], []))
        times.append(time)
        rates.append(rate * 100)
    for category, (times, rates) in sorted(series.items()):
        ax.plot(_times(times), rates, marker="o", markersize=3, linewidth=1.2, label=category)
    ax.set_ylabel("% of comments")
    ax.set_ylim(bottom=0)
    ax.legend(fontsize=8, loc="upper left")
    _time_axis(ax, _times(r.column("time")))


def _draw_reply_depth(ax: Axes, r: Result) -> None:
    if not r.rows:
        return _no_data(ax)
    ax.bar([str(d) for d in r.column("reply_depth")], r.column("comments"), color="#56a64b")
    ax.set_xlabel("reply depth (0 = top-level)")
    ax.set_ylabel("comments")
    ax.grid(True, axis="y", alpha=0.3)


def _draw_language_mix(ax: Axes, r: Result) -> None:
    if not r.rows:
        return _no_data(ax)
    ax.pie(
        r.column("comments"),
        labels=r.column("lang"),
        autopct="%1.0f%%",
        startangle=90,
        counterclock=False,
        wedgeprops={"width": 0.5},
        textprops={"fontsize": 8},
    )
    ax.set_aspect("equal")


@dataclass(frozen=True)
class Chart:
    panel_key: str
    title: str
    draw: Callable[[Axes, Result], None]


CHARTS = (
    Chart("comments_per_minute", "Comments per minute", _draw_comments_per_minute),
    Chart("flag_rate_by_category", "Flag rate by category", _draw_flag_rate),
    Chart("reply_depth", "Reply-depth distribution", _draw_reply_depth),
    Chart("language_mix", "Language mix", _draw_language_mix),
)
#: (panel key, heading) of the tables, in report order.
TABLES = (
    ("top_flagged_threads", "Top flagged threads"),
    ("top_flagged_authors", "Top flagged authors"),
    ("latest_flagged_comments", "Latest flagged comments"),
    ("detector_alerts", "Detector alerts"),
)


def _png(fig: Figure) -> bytes:
    FigureCanvasAgg(fig)  # Agg explicitly: no display, no global pyplot state
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110)  # constrained layout already fits the labels
    return buffer.getvalue()


def _chart_png(chart: Chart, result: Result) -> bytes:
    fig = Figure(figsize=(7.5, 3.4), layout="constrained")
    ax = fig.add_subplot()
    chart.draw(ax, result)
    ax.set_title(chart.title, fontsize=11, loc="left")
    return _png(fig)


def _grid_png(results: dict[str, Result], window: ReportWindow, stats: Sequence[tuple[str, str]]) -> bytes:
    columns = 2
    rows = math.ceil(len(CHARTS) / columns)
    fig = Figure(figsize=(7.5 * columns, 3.6 * rows + 0.8), layout="constrained")
    summary = "   ".join(f"{label}: {value}" for label, value in stats)
    fig.suptitle(f"comment-streams report — {window.describe()}\n{summary}", fontsize=11)
    for i, chart in enumerate(CHARTS):
        ax = fig.add_subplot(rows, columns, i + 1)
        chart.draw(ax, results[chart.panel_key])
        ax.set_title(chart.title, fontsize=11, loc="left")
    return _png(fig)


# -------------------------------------------------------------------------------------------- HTML


def _cell(column: str, value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, datetime):
        return html.escape(_fmt_time(value))
    if isinstance(value, float):
        return f"{value:,.3f}".rstrip("0").rstrip(".") if math.isfinite(value) else html.escape(str(value))
    text = str(value)
    # Only http(s) URLs become links: a javascript: URL in the data must stay inert text.
    if column == "link" and text.startswith(("https://", "http://")):
        return f'<a href="{html.escape(text, quote=True)}">open</a>'
    return html.escape(text)


def _table_html(title: str, result: Result) -> str:
    head = "".join(f"<th>{html.escape(c)}</th>" for c in result.columns)
    if not result.rows:
        body = f'<tr><td class="empty" colspan="{len(result.columns)}">No rows in this time range</td></tr>'
    else:
        body = "".join(
            "<tr>" + "".join(f"<td>{_cell(c, v)}</td>" for c, v in zip(result.columns, row, strict=True)) + "</tr>"
            for row in result.rows
        )
    table = f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"
    return f"<section><h2>{html.escape(title)}</h2>{table}</section>"


_CSS = """
body { font-family: -apple-system, "Segoe UI", Roboto, Helvetica, Arial, sans-serif; margin: 24px; color: #222; }
h1 { font-size: 22px; margin-bottom: 4px; } h2 { font-size: 16px; margin: 24px 0 8px; }
.window { color: #555; margin-bottom: 16px; }
.stats { display: flex; gap: 12px; flex-wrap: wrap; }
.stat { border: 1px solid #ddd; border-radius: 6px; padding: 10px 16px; min-width: 120px; }
.stat .value { font-size: 24px; font-weight: 600; } .stat .label { color: #666; font-size: 12px; }
.charts { display: grid; grid-template-columns: repeat(auto-fit, minmax(520px, 1fr)); gap: 12px; }
.charts img { width: 100%; border: 1px solid #eee; border-radius: 6px; }
table { border-collapse: collapse; font-size: 12px; width: 100%; }
th, td { border-bottom: 1px solid #eee; padding: 4px 8px; text-align: left; vertical-align: top; }
th { background: #f6f6f6; } td.empty { color: #888; font-style: italic; }
"""


def _html(
    window: ReportWindow,
    stats: Sequence[tuple[str, str]],
    charts: Sequence[tuple[Chart, bytes]],
    tables: Sequence[tuple[str, Result]],
) -> str:
    stat_html = "".join(
        f'<div class="stat"><div class="value">{html.escape(value)}</div><div class="label">{html.escape(label)}'
        "</div></div>"
        for label, value in stats
    )
    chart_html = "".join(
        f'<img alt="{html.escape(chart.title)}" src="data:image/png;base64,{base64.b64encode(png).decode("ascii")}">'
        for chart, png in charts
    )
    tables_html = "".join(_table_html(title, result) for title, result in tables)
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>comment-streams report</title><style>{_CSS}</style></head><body>"
        "<h1>comment-streams report</h1>"
        f'<div class="window">{html.escape(window.describe())}</div>'
        f'<div class="stats">{stat_html}</div>'
        f'<section><h2>Charts</h2><div class="charts">{chart_html}</div></section>'
        f"{tables_html}"
        f'<p class="window">Generated {html.escape(_fmt_time(datetime.now(UTC)))} UTC from the Grafana '
        "dashboard queries.</p></body></html>\n"
    )


#: The file types the report is written as, by extension.
REPORT_SUFFIXES = {".html": "self-contained HTML", ".htm": "self-contained HTML", ".png": "one PNG chart grid"}


class ReportFormatError(ValueError):
    """`out` names a file type the report cannot be written as."""


def check_report_path(out: Path) -> None:
    """Refuse an extension the report is not written as (a report.pdf holding HTML would mislead)."""
    if out.suffix.lower() not in REPORT_SUFFIXES:
        supported = ", ".join(f"{suffix} ({what})" for suffix, what in REPORT_SUFFIXES.items())
        found = f"{out.suffix!r}" if out.suffix else "no extension"
        raise ReportFormatError(f"{out}: cannot write a report as {found}; supported: {supported}")


def render_report(client: Client, *, since: timedelta | None, until: datetime | None, out: Path) -> Path:
    """Render the report to `out` (.html/.htm: self-contained HTML; .png: one chart grid; anything
    else: ReportFormatError, before any query runs)."""
    check_report_path(out)
    window = report_window(client, since=since, until=until)
    stats = []
    for key, label, fmt in _STATS:
        value = _run(client, key, window).rows[0][0]
        stats.append((label, fmt.format(value or 0)))
    results = {chart.panel_key: _run(client, chart.panel_key, window) for chart in CHARTS}
    out.parent.mkdir(parents=True, exist_ok=True)
    if out.suffix.lower() == ".png":
        out.write_bytes(_grid_png(results, window, stats))
        return out
    charts = [(chart, _chart_png(chart, results[chart.panel_key])) for chart in CHARTS]
    tables = [(title, _run(client, key, window)) for key, title in TABLES]
    out.write_text(_html(window, stats, charts, tables), encoding="utf-8")
    return out
