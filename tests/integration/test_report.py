"""streams.report on seeded data: self-contained HTML with the charts and tables, a PNG grid, data-anchored windows."""

from __future__ import annotations

import base64
import re
from datetime import timedelta
from pathlib import Path

import pytest
from clickhouse_connect.driver.client import Client

from streams.report import CHARTS, TABLES, render_report, report_window
from tests.integration.seed_data import BASE, seed_all, visible_comments

pytestmark = pytest.mark.clickhouse

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
LATEST = max(c.posted_at for c in visible_comments())  # 10:15, the recipes thread


def _images(page: str) -> list[bytes]:
    return [base64.b64decode(m) for m in re.findall(r'src="data:image/png;base64,([A-Za-z0-9+/=]+)"', page)]


def _section(page: str, title: str) -> str:
    start = page.index(f"<h2>{title}</h2>")
    return page[start : page.index("</section>", start)]


def test_html_report(ch: Client, tmp_path: Path) -> None:
    seed_all(ch)
    out = render_report(ch, since=None, until=None, out=tmp_path / "sub" / "report.html")
    assert out == tmp_path / "sub" / "report.html"
    page = out.read_text(encoding="utf-8")
    images = _images(page)
    assert len(images) == len(CHARTS) == 4
    assert all(png.startswith(PNG_SIGNATURE) and len(png) > 5000 for png in images)
    # Self-contained: nothing loaded from elsewhere.
    assert not re.search(r'(?:src|href)="(?!data:|https://news\.example\.com/)', page)
    for _, title in TABLES:
        assert f"<h2>{title}</h2>" in page
    # Summary figures: FINAL counts (29 visible comments of 33 rows inserted).
    assert '<div class="value">29</div><div class="label">Comments</div>' in page
    assert '<div class="value">3</div><div class="label">Detector alerts</div>' in page
    threads = _section(page, "Top flagged threads")
    assert threads.index("t-putin-call") < threads.index("t-world-cup")
    latest = _section(page, "Latest flagged comments")
    assert '<a href="https://news.example.com/t-putin-call#comment-c13">open</a>' in latest
    assert "profanity: lexicon match: damn; lexicon match: idiota | toxicity: model score above 0.70" in latest
    assert "comment-c8" not in latest  # flagged only in a superseded version
    assert latest.count("<tr>") - 1 == sum(1 for c in visible_comments() if c.flags)
    alerts = _section(page, "Detector alerts")
    assert alerts.count("toxicity_spike") == 1 and "spam_wave" in alerts and "pile_on" in alerts
    assert "ending at the latest comment" in page


def test_since_is_relative_to_the_latest_comment(ch: Client, tmp_path: Path) -> None:
    seed_all(ch)
    window = report_window(ch, since=timedelta(minutes=40), until=None)
    assert (window.start, window.end) == (LATEST - timedelta(minutes=40), LATEST)
    page = render_report(ch, since=timedelta(minutes=40), until=None, out=tmp_path / "r.html").read_text("utf-8")
    in_window = [c for c in visible_comments() if c.posted_at >= LATEST - timedelta(minutes=40)]
    assert f'<div class="value">{len(in_window)}</div><div class="label">Comments</div>' in page
    assert "No rows in this time range" in _section(page, "Latest flagged comments")
    assert len(_images(page)) == len(CHARTS)


def test_until_and_since_select_a_past_window(ch: Client, tmp_path: Path) -> None:
    seed_all(ch)
    until = BASE + timedelta(minutes=10)
    window = report_window(ch, since=timedelta(minutes=10), until=until)
    assert (window.start, window.end) == (BASE, until)
    page = render_report(ch, since=timedelta(minutes=10), until=until, out=tmp_path / "r.html").read_text("utf-8")
    latest = _section(page, "Latest flagged comments")
    assert "comment-c7" in latest and "comment-c12" not in latest  # 09:09 in, 09:20 out


def test_png_grid(ch: Client, tmp_path: Path) -> None:
    seed_all(ch)
    out = render_report(ch, since=timedelta(hours=2), until=None, out=tmp_path / "report.png")
    data = out.read_bytes()
    assert data.startswith(PNG_SIGNATURE)
    width, height = int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
    assert width > height > 500  # two charts a row, two rows
    assert not (tmp_path / "report.html").exists()


def test_empty_database(ch: Client, tmp_path: Path) -> None:
    page = render_report(ch, since=None, until=None, out=tmp_path / "empty.html").read_text("utf-8")
    assert len(_images(page)) == len(CHARTS)
    assert page.count("No rows in this time range") == len(TABLES)
    assert render_report(ch, since=None, until=None, out=tmp_path / "empty.png").read_bytes().startswith(PNG_SIGNATURE)


def test_data_is_escaped_and_only_http_links_are_links(ch: Client, tmp_path: Path) -> None:
    seed_all(ch)
    ch.insert(
        "comments",
        [["t-evil", "x1", "x1-v1", "<b>mallory</b>", BASE + timedelta(minutes=30), "<script>alert(1)</script>",
          "javascript:alert(1)", ["spam"], {"spam": ["<img src=x onerror=alert(1)>"]}, 0.5, "Evil <i>thread</i>", 1]],
        column_names=["thread_id", "comment_id", "event_id", "author", "posted_at", "body", "url", "flags", "reasons",
                      "toxicity", "thread_title", "version"],
    )  # fmt: skip
    page = render_report(ch, since=None, until=None, out=tmp_path / "r.html").read_text("utf-8")
    latest = _section(page, "Latest flagged comments")
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in latest and "<script>" not in page
    assert "&lt;b&gt;mallory&lt;/b&gt;" in latest and "<img src=x" not in page
    assert 'href="javascript:' not in page and "javascript:alert(1)" in latest  # shown as text, not a link
