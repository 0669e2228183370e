"""The `streams` command line."""

from __future__ import annotations

import asyncio
import csv
import gc
import io
import json
import os
import subprocess
import sys
from functools import partial
from pathlib import Path
from typing import Annotated, Any

import orjson
import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from streams import PROJECT_ROOT
from streams.settings import Settings, SettingsError, load_settings

cli = typer.Typer(
    help="comment-streams: comment threads through Kafka and Faust into ClickHouse.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
# Piped output (CI logs, files) would otherwise be squeezed into 80 columns.
console = Console(width=None if sys.stdout.isatty() else 160)
err = Console(stderr=True, soft_wrap=True)

SAMPLES_DIR = Path(__file__).parent / "samples"
KAFKA_SCRIPT = PROJECT_ROOT / "deploy" / "kafka" / "kafka.sh"


def fail(message: str, code: int = 1) -> typer.Exit:
    err.print(f"[bold red]error:[/] {message}")
    return typer.Exit(code)


def _settings() -> Settings:
    try:
        return load_settings()
    except SettingsError as exc:
        raise fail(str(exc)) from exc


# -- worker ------------------------------------------------------------------------------------


@cli.command()
def worker(
    loglevel: Annotated[str, typer.Option(help="debug, info, warning, error")] = "",
) -> None:
    """Run the Faust worker: ingest, enrich, windows and ClickHouse sinks, with /metrics and /sql."""
    settings = _settings()
    from streams.clickhouse.client import ClickHouseUnavailable, connect
    from streams.clickhouse.migrations import MigrationError, migrate

    try:
        applied = migrate(connect(settings.clickhouse_dsn))
    except (ClickHouseUnavailable, MigrationError) as exc:
        raise fail(str(exc)) from exc
    for m in applied:
        err.print(f"applied migration {m.version:04d}_{m.name}")
    asyncio.run(_ensure_topics(settings))

    from faust.worker import Worker

    import streams.agents  # noqa: F401  (registers the agents)
    from streams.agents.enrich import warm_up
    from streams.app import app
    from streams.enrich.flags import ModerationConfigError

    try:
        warm_up()
    except ModerationConfigError as exc:
        raise fail(str(exc)) from exc
    freeze_long_lived_objects()
    runner = Worker(app, loglevel=loglevel or settings.log_level, quiet=True)
    # Faust's terminal spinner sets the root logger to DEBUG (every Kafka send then builds a log
    # record: a third of the enrich agent's time) and writes cursor escapes into log files.
    runner.spinner = None
    runner.execute_from_commandline()


def freeze_long_lived_objects() -> None:
    """Exempt every object alive now (modules, models, configuration) from cyclic garbage collection.

    Call once, after the models are loaded. Full collections otherwise walk these ~150k objects
    over and over while comments are scored: about 10% of the enrichment's CPU time
    (bench/RESULTS.md). Garbage made later is collected as usual.
    """
    gc.collect()
    gc.freeze()


async def _ensure_topics(settings: Settings) -> None:
    from streams.kafka_admin import ensure_topics

    try:
        await asyncio.wait_for(ensure_topics(settings), timeout=30)
    except Exception as exc:
        raise fail(f"cannot reach Kafka at {settings.broker} ({exc}); start it with `streams broker start`") from exc


# -- sources -----------------------------------------------------------------------------------


def _advance(progress: Progress, task: Any, _item: object) -> None:
    progress.advance(task)


def _open_source(path: Path, fmt: str, tz: str) -> Any:
    from streams.sources.registry import SourceError, parse_source
    from streams.sources.threaddump import ThreadDumpError

    if not path.exists():
        raise fail(f"{path}: no such file")
    try:
        result = parse_source(path, fmt=fmt, tz=tz)
    except (SourceError, ThreadDumpError, UnicodeDecodeError, OSError) as exc:
        message = str(exc)
        raise fail(message if message.startswith(str(path)) else f"{path}: {message}") from exc
    if result.dump is not None and not result.dump.comments:
        raise fail(f"{path}: no comments found (expected header lines like 'Author Tue, 03/20/2018 - 13:30 Permalink')")
    return result


@cli.command()
def parse(
    path: Path,
    format: Annotated[str, typer.Option("--format", help="auto, threaddump or jsonl")] = "auto",
    tz: Annotated[str, typer.Option(help="IANA zone of the dump's local times")] = "UTC",
) -> None:
    """Print one JSON object per comment in PATH (no Kafka needed)."""
    result = _open_source(path, format, tz)
    out = sys.stdout.buffer
    for item in result:
        if item.bad:
            err.print(f"[yellow]skipped bad line:[/] {item.reason}")
            continue
        out.write(item.value + b"\n")
    for warning in result.warnings:
        err.print(f"[yellow]warning:[/] {warning}")


@cli.command()
def feed(
    paths: Annotated[list[Path] | None, typer.Argument(help="files to produce (default: the bundled samples)")] = None,
    format: Annotated[str, typer.Option("--format", help="auto, threaddump or jsonl")] = "auto",
    tz: Annotated[str, typer.Option(help="IANA zone of thread dumps' local times")] = "UTC",
    rate: Annotated[float, typer.Option(help="messages per second; 0 = as fast as possible")] = 0.0,
) -> None:
    """Produce files to comments.raw (keyed by thread) with a progress bar."""
    from streams.feed import feed as run_feed

    settings = _settings()
    files = paths or sorted(SAMPLES_DIR.glob("*.txt"))
    total_sent = total_bad = 0
    with Progress(
        TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), console=err
    ) as progress:
        for path in files:
            result = _open_source(path, format, tz)
            known_total = len(result.dump.comments) if getattr(result, "dump", None) else None
            task = progress.add_task(f"{path.name}", total=known_total)
            try:
                stats = asyncio.run(
                    run_feed(settings, result, rate=rate or None, on_sent=partial(_advance, progress, task))
                )
            except Exception as exc:
                raise fail(f"feeding {path} to {settings.broker} failed: {exc}") from exc
            total_sent += stats.sent
            total_bad += stats.bad
            for warning in result.warnings:
                err.print(f"[yellow]{path.name}: {warning}[/]")
    err.print(
        f"sent {total_sent} messages to {settings.topic('comments.raw')}"
        + (f" ({total_bad} unparseable lines, sent on for dead-lettering)" if total_bad else "")
    )


# -- ClickHouse --------------------------------------------------------------------------------


@cli.command()
def migrate() -> None:
    """Apply the ClickHouse migrations not applied yet (safe to re-run)."""
    from streams.clickhouse.client import ClickHouseUnavailable, connect
    from streams.clickhouse.migrations import MigrationError
    from streams.clickhouse.migrations import migrate as run_migrations

    settings = _settings()
    try:
        applied = run_migrations(connect(settings.clickhouse_dsn))
    except (ClickHouseUnavailable, MigrationError) as exc:
        raise fail(str(exc)) from exc
    if not applied:
        console.print("nothing to do: every migration is applied")
    for m in applied:
        console.print(f"applied {m.version:04d}_{m.name}")


def query_client(settings: Settings, *, write: bool = False) -> Any:
    """A client to query with: the running worker (which owns an embedded database) or ClickHouse itself."""
    from streams.clickhouse.client import ClickHouseUnavailable, connect, is_embedded
    from streams.worker_client import WorkerClient

    if is_embedded(settings.clickhouse_dsn):
        remote = WorkerClient(settings)
        if remote.alive():
            if write:
                raise fail("the running worker owns the embedded database and serves reads only; stop it to write")
            return remote
    try:
        return connect(settings.clickhouse_dsn)
    except ClickHouseUnavailable as exc:
        raise fail(str(exc)) from exc


def print_result(columns: list[str], rows: list[Any], fmt: str) -> None:
    if fmt == "json":
        for row in rows:
            sys.stdout.buffer.write(orjson.dumps(dict(zip(columns, row, strict=True)), default=str) + b"\n")
    elif fmt == "csv":
        buffer = io.StringIO()
        writer = csv.writer(buffer)
        writer.writerow(columns)
        writer.writerows(rows)
        sys.stdout.write(buffer.getvalue())
    else:
        table = Table(*columns, show_lines=False)
        for row in rows:
            table.add_row(*("NULL" if v is None else str(v) for v in row))
        console.print(table)
        console.print(f"{len(rows)} row{'s' if len(rows) != 1 else ''}", style="dim")


@cli.command()
def sql(
    statement: str,
    format: Annotated[str, typer.Option("--format", help="table, csv or json")] = "table",
    write: Annotated[bool, typer.Option("--write", help="allow statements that change data")] = False,
) -> None:
    """Run SQL against ClickHouse (through the worker when it owns the embedded database)."""
    from streams.sqlguard import WriteRefused, check_read_only

    if format not in ("table", "csv", "json"):
        raise fail("--format is one of table, csv, json", 2)
    if not write:
        try:
            statement = check_read_only(statement)
        except WriteRefused as exc:
            raise fail(str(exc), 2) from exc
    client = query_client(_settings(), write=write)
    try:
        if write:
            client.command(statement)
            console.print("ok")
            return
        result = client.query(statement)
    except Exception as exc:
        raise fail(str(exc).strip().splitlines()[0] if str(exc).strip() else repr(exc)) from exc
    print_result(list(result.column_names), list(result.result_rows), format)


@cli.command()
def query(
    name: Annotated[str, typer.Argument(help="a named query from schemas/queries/ (--list shows them)")] = "",
    param: Annotated[list[str] | None, typer.Option("--param", "-p", help="NAME=VALUE, repeatable")] = None,
    format: Annotated[str, typer.Option("--format", help="table, csv or json")] = "table",
    list_: Annotated[bool, typer.Option("--list", help="list the named queries and their parameters")] = False,
) -> None:
    """Run a named, documented analytics query (schemas/queries/NAME.sql) with typed parameters."""
    from streams.queries import QueryError, list_queries, load_query

    if list_ or not name:
        table = Table("name", "what it answers", "parameters (default)")
        for q in list_queries():
            params = ", ".join(
                f"{p.name}: {p.type} ({p.default if p.default is not None else 'required'})" for p in q.params
            )
            table.add_row(q.name, q.title, params)
        console.print(table)
        return
    pairs: dict[str, str] = {}
    for item in param or []:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise fail(f"--param takes NAME=VALUE, got {item!r}", 2)
        pairs[key.strip()] = value
    try:
        statement, values = load_query(name).bind(pairs)
    except QueryError as exc:
        raise fail(str(exc), 2) from exc
    client = query_client(_settings())
    try:
        result = client.query(statement, parameters={k: _wire_value(v) for k, v in values.items()})
    except Exception as exc:
        raise fail(str(exc).strip().splitlines()[0] if str(exc).strip() else repr(exc)) from exc
    print_result(list(result.column_names), list(result.result_rows), format)


def _wire_value(value: object) -> object:
    """Parameter values as ClickHouse parses them whichever way they travel (HTTP JSON or native)."""
    from datetime import datetime

    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]
    return value


@cli.command()
def report(
    out: Annotated[Path, typer.Option(help="report.html (self-contained) or a .png chart grid")] = Path("report.html"),
    since: Annotated[str, typer.Option(help="how far back from the newest comment: 30m, 1h, 2d; empty = all")] = "",
) -> None:
    """Render the key dashboard panels as charts and tables, without Grafana."""
    from streams.report import render_report

    span = _parse_span(since) if since else None
    client = query_client(_settings())
    try:
        path = render_report(client, since=span, until=None, out=out)
    except Exception as exc:
        raise fail(f"report failed: {exc}") from exc
    console.print(f"wrote {path}")


def _parse_span(text: str) -> Any:
    from datetime import timedelta

    units = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}
    number, unit = text[:-1], text[-1:]
    if unit not in units or not number.replace(".", "", 1).isdigit():
        raise fail(f"--since takes a number and a unit (s, m, h, d, w), like 30m or 2d; got {text!r}", 2)
    return timedelta(**{units[unit]: float(number)})


@cli.command()
def score(
    text: Annotated[bool, typer.Option("--text", help="stdin is plain text, one comment per line")] = False,
    batch_size: Annotated[int, typer.Option(min=1, help="lines scored together")] = 512,
) -> None:
    """Score comments on stdin (JSON lines with `body` and optional `author`, or --text) -> JSON lines.

    `comment_id`, `event_id` and `author` are copied to the output line; exits 1 if a line failed."""
    from streams.enrich.flags import FlagScorer, ModerationConfigError
    from streams.enrich.score_cli import run_score

    try:
        scorer = FlagScorer()
        scorer.warm_up()
        freeze_long_lived_objects()
        errors = run_score(sys.stdin.buffer, sys.stdout.buffer, text_mode=text, batch_size=batch_size, scorer=scorer)
    except ModerationConfigError as exc:
        raise fail(str(exc)) from exc
    if errors:
        err.print(f'[yellow]{errors} line(s) could not be scored (see their "error" field)[/]')
        raise typer.Exit(1)


# -- schema and settings -----------------------------------------------------------------------


@cli.command()
def schema(
    write: Annotated[bool, typer.Option("--write", help="rewrite schemas/events/comment.v1.json")] = False,
) -> None:
    """Print (or --write) the JSON Schema of the comment event, generated from streams.models."""
    from streams.models import comment_event_schema

    text = json.dumps(comment_event_schema(), indent=2, sort_keys=True) + "\n"
    if write:
        target = PROJECT_ROOT / "schemas" / "events" / "comment.v1.json"
        target.write_text(text, encoding="utf-8")
        console.print(f"wrote {target}")
    else:
        sys.stdout.write(text)


@cli.command("settings")
def show_settings() -> None:
    """List the STREAMS_* environment variables, their values here and what they do."""
    from streams.settings import describe_settings

    current = _settings()
    table = Table("variable", "value", "meaning")
    for var, _default, meaning in describe_settings():
        table.add_row(var, str(getattr(current, var.removeprefix("STREAMS_").lower())), meaning)
    console.print(table)


# -- broker ------------------------------------------------------------------------------------


@cli.command()
def broker(action: Annotated[str, typer.Argument(help="start, stop, status, restart or wipe")]) -> None:
    """Manage the local single-node Kafka broker (deploy/kafka/kafka.sh)."""
    if action not in ("start", "stop", "status", "restart", "wipe", "fetch"):
        raise fail("action is one of start, stop, status, restart, wipe, fetch", 2)
    settings = _settings()
    env = dict(os.environ)
    env.setdefault("KAFKA_PORT", settings.bootstrap_servers[0].rsplit(":", 1)[-1])
    raise typer.Exit(subprocess.call(["bash", str(KAFKA_SCRIPT), action], env=env))


@cli.command()
def demo(
    keep_running: Annotated[bool, typer.Option("--keep-running", help="leave the worker up after the summary")] = False,
    paths: Annotated[list[Path] | None, typer.Argument(help="thread dumps (default: the bundled samples)")] = None,
) -> None:
    """Broker + worker + embedded ClickHouse: feed the sample threads and print what landed."""
    from streams.demo import DemoError, run_demo

    try:
        run_demo(
            _settings(), keep_running=keep_running, console=console, files=paths or sorted(SAMPLES_DIR.glob("*.txt"))
        )
    except DemoError as exc:
        raise fail(str(exc)) from exc


def main() -> None:
    cli()


if __name__ == "__main__":
    main()
