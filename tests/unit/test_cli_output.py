"""What the command line prints: data taken literally, headers of empty results, UTC offsets in JSON,
report file types; and which database a DSN names (what `streams sql` compares with the worker's)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
from rich.console import Console

from streams.cli import print_result
from streams.clickhouse.identity import database_id, database_name
from streams.report import REPORT_SUFFIXES, ReportFormatError, check_report_path
from streams.richtext import data_table, escape
from streams.settings import load_settings
from streams.worker_client import WorkerClient, _converter

# ------------------------------------------------------------------------------------- rich markup


def test_table_cells_are_printed_literally(capsys: pytest.CaptureFixture[str]) -> None:
    # A comment body or file line with markup-like text: `[/]` used to crash, `:x:` became an emoji.
    print_result(["line", "[b]col[/b]"], [["root:x:0:0:[/]", "[red]not red[/red] :thumbs_up:"], [None, 1]], "table")
    out = capsys.readouterr().out
    assert "root:x:0:0:[/]" in out
    assert "[red]not red[/red] :thumbs_up:" in out
    assert "[b]col[/b]" in out
    assert "\u274c" not in out and "\U0001f44d" not in out
    assert "NULL" in out and "2 rows" in out


def test_data_table_and_escape_keep_text_as_is() -> None:
    console = Console(record=True, width=200, emoji=False)
    console.print(data_table(["a"], [["[/] :x: [bold]"]]))
    console.print(f"[yellow]warning:[/] {escape('line 3: [/] :x:')}")
    text = console.export_text()
    assert "[/] :x: [bold]" in text
    assert "warning: line 3: [/] :x:" in text


# --------------------------------------------------------------------------------- empty and JSON


def test_empty_results_keep_their_headers(capsysbinary: pytest.CaptureFixture[bytes]) -> None:
    print_result(["author", "comments"], [], "csv")
    assert capsysbinary.readouterr().out.decode().splitlines() == ["author,comments"]
    print_result(["author", "comments"], [], "json")
    assert json.loads(capsysbinary.readouterr().out) == []
    print_result(["author", "comments"], [], "table")
    out = capsysbinary.readouterr().out.decode()
    assert "author" in out and "comments" in out and "0 rows" in out


def test_json_is_an_array_and_datetimes_carry_their_utc_offset(capsysbinary: pytest.CaptureFixture[bytes]) -> None:
    naive_utc = datetime(2018, 3, 20, 13, 30, 0, 123000)  # how clickhouse-connect returns DateTime64('UTC')
    berlin = datetime(2018, 3, 20, 14, 30, tzinfo=timezone(timedelta(hours=1)))
    rows = [[naive_utc, berlin, [naive_utc]], [None, None, []]]
    print_result(["posted_at", "local", "times"], rows, "json")
    parsed = json.loads(capsysbinary.readouterr().out)
    assert parsed[0] == {
        "posted_at": "2018-03-20T13:30:00.123000+00:00",
        "local": "2018-03-20T14:30:00+01:00",
        "times": ["2018-03-20T13:30:00.123000+00:00"],
    }
    assert datetime.fromisoformat(parsed[0]["posted_at"]) == naive_utc.replace(tzinfo=UTC)
    assert parsed[1] == {"posted_at": None, "local": None, "times": []}


def test_worker_client_reads_utc_offsets_back_as_clickhouse_connect_returns_them() -> None:
    to_datetime = _converter("DateTime64(3, 'UTC')")
    assert to_datetime("2018-03-20T13:30:00+00:00") == datetime(2018, 3, 20, 13, 30)
    assert to_datetime("2018-03-20T13:30:00") == datetime(2018, 3, 20, 13, 30)  # an older worker
    plus_one = to_datetime("2018-03-20T14:30:00+01:00")
    assert plus_one.utcoffset() == timedelta(hours=1)


# ------------------------------------------------------------------------------------------ report


@pytest.mark.parametrize("name", ["report.pdf", "report.svg", "report", "report.HTML.txt"])
def test_report_refuses_file_types_it_does_not_write(name: str) -> None:
    with pytest.raises(ReportFormatError, match=r"supported: \.html .*\.png"):
        check_report_path(Path(name))


@pytest.mark.parametrize("name", ["report.html", "r.HTM", "grid.png"])
def test_report_accepts_its_file_types(name: str) -> None:
    check_report_path(Path(name))
    assert Path(name).suffix.lower() in REPORT_SUFFIXES


def test_streams_report_pdf_fails_before_touching_anything(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("STREAMS_")}
    env |= {"STREAMS_CLICKHOUSE_DSN": f"chdb://{tmp_path / 'db'}", "STREAMS_WEB_PORT": "1"}
    done = subprocess.run(
        [sys.executable, "-m", "streams.cli", "report", "--out", str(tmp_path / "report.pdf")],
        capture_output=True,
        env=env,
        timeout=120,
    )
    assert done.returncode == 2
    message = done.stderr.decode()
    assert "cannot write a report as '.pdf'" in message and ".html" in message and ".png" in message
    assert not (tmp_path / "report.pdf").exists() and not (tmp_path / "db").exists()


# --------------------------------------------------------------------------------- database identity


def test_database_id_names_the_database_not_the_credentials(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert database_id("chdb://data") == database_id(f"chdb://{tmp_path / 'data'}")
    assert database_id("chdb://data") == database_id("chdb://data?database=default")
    assert database_id("chdb://data") != database_id("chdb://other")
    assert database_id("chdb://data") != database_id("chdb://data?database=x")
    server = "https://alice:s3cret@CH.example:8443/analytics"
    assert database_id(server) == database_id("https://bob:other@ch.example:8443/analytics")
    assert database_id(server) != database_id("https://alice:s3cret@ch.example:8443/default")
    assert "s3cret" not in database_name(server) and "alice" not in database_name(server)


def test_a_worker_of_another_database_is_refused() -> None:
    client = WorkerClient(load_settings({}))
    mine = "chdb:///srv/mine"
    assert client.database_mismatch(mine, {"status": "ok", "database": database_id(mine)}) is None
    message = client.database_mismatch(mine, {"status": "ok", "database": database_id("chdb:///srv/theirs")})
    assert message is not None and "chdb:///srv/mine" in message and database_id("chdb:///srv/theirs") in message
    assert "does not name" in (client.database_mismatch(mine, {"status": "ok"}) or "")
