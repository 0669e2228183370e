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
import time
from functools import partial
from pathlib import Path
from typing import Annotated, Any

import orjson
import typer
from rich.console import Console
from rich.table import Table

from streams import PROJECT_ROOT
from streams.clickhouse.columns import result_columns
from streams.richtext import data_table, escape
from streams.settings import Settings, SettingsError, load_settings

cli = typer.Typer(
    help="comment-streams: comment threads through Kafka and Faust into ClickHouse.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
# Piped output (CI logs, files) would otherwise be squeezed into 80 columns.
# emoji=False: `:x:` in data (comment bodies, query results) must not turn into an emoji.
console = Console(width=None if sys.stdout.isatty() else 160, emoji=False)
err = Console(stderr=True, soft_wrap=True, emoji=False)

SAMPLES_DIR = Path(__file__).parent / "samples"
KAFKA_SCRIPT = PROJECT_ROOT / "deploy" / "kafka" / "kafka.sh"


def fail(message: str, code: int = 1) -> typer.Exit:
    err.print(f"[bold red]error:[/] {escape(message)}")
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
    processes: Annotated[
        int, typer.Option(min=1, help="worker processes on this machine, under a supervisor (<= partitions)")
    ] = 1,
    second_stage: Annotated[
        bool,
        typer.Option(
            "--second-stage",
            help="also run the second-stage moderation model, in a process of its own (README: Moderation flags)",
        ),
    ] = False,
) -> None:
    """Run the Faust worker: ingest, enrich, windows and ClickHouse sinks, with /metrics and /sql."""
    settings = _settings()
    if processes > 1 or second_stage:
        raise typer.Exit(_supervise(settings, processes, loglevel, second_stage=second_stage))
    limit_malloc_arenas(settings.malloc_arenas)  # before ClickHouse and Kafka start their threads
    from streams.clickhouse.client import ClickHouseUnavailable, connect
    from streams.clickhouse.migrations import MigrationError, migrate

    check_web_exposure(settings)
    if settings.runs_sink:  # a processing-role process never opens ClickHouse (supervisor.py)
        try:
            applied = migrate(connect(settings.clickhouse_dsn), cluster=settings.clickhouse_cluster)
        except (ClickHouseUnavailable, MigrationError) as exc:
            raise fail(str(exc)) from exc
        for m in applied:
            err.print(f"applied migration {m.version:04d}_{m.name}")
    asyncio.run(_ensure_topics(settings))

    from faust.worker import Worker

    import streams.agents  # noqa: F401  (registers the agents of this process's role)
    from streams.app import app
    from streams.enrich.flags import ModerationConfigError

    if settings.runs_processing:
        from streams.agents.enrich import warm_up

        try:
            warm_up()
        except ModerationConfigError as exc:
            raise fail(str(exc)) from exc
    if settings.runs_second_stage:
        from streams.agents.second_stage import warm_up as warm_up_second_stage
        from streams.enrich.flags.encoder import EncoderUnavailable

        try:
            warm_up_second_stage()
        except (ModerationConfigError, EncoderUnavailable) as exc:
            raise fail(str(exc)) from exc
    freeze_long_lived_objects(settings.gc_young_threshold)
    runner = Worker(app, loglevel=loglevel or settings.log_level, quiet=True)
    # Faust's terminal spinner sets the root logger to DEBUG (every Kafka send then builds a log
    # record: a third of the enrich agent's time) and writes cursor escapes into log files.
    runner.spinner = None
    runner.execute_from_commandline()


def check_web_exposure(settings: Settings) -> None:
    """Refuse to serve /sql and /reviews beyond this machine without a token, or with unreadable token settings."""
    from streams.apitoken import TokenError, is_loopback

    try:
        token = settings.resolved_api_token()
    except TokenError as exc:
        raise fail(str(exc)) from exc
    if not token and not is_loopback(settings.web_host):
        raise fail(
            f"STREAMS_WEB_HOST={settings.web_host} serves /sql and /reviews beyond this machine: set STREAMS_API_TOKEN "
            "(or STREAMS_API_TOKEN_FILE) first"
        )


def _supervise(settings: Settings, processes: int, loglevel: str, *, second_stage: bool = False) -> int:
    """`streams worker --processes N [--second-stage]`: the children and their roles are in streams/supervisor.py."""
    import logging

    from streams.clickhouse.client import ClickHouseUnavailable, connect, is_embedded
    from streams.clickhouse.migrations import MigrationError, migrate
    from streams.supervisor import PlanError, Supervisor, plan_processes

    try:
        specs = plan_processes(settings, processes, second_stage=second_stage)
    except PlanError as exc:
        raise fail(str(exc), 2) from exc
    logging.basicConfig(level=logging.INFO, format="[%(asctime)s] %(name)s: %(message)s", stream=sys.stderr)
    if not is_embedded(settings.clickhouse_dsn):  # once here, not N times at once in the children
        try:
            migrate(connect(settings.clickhouse_dsn), cluster=settings.clickhouse_cluster)
        except (ClickHouseUnavailable, MigrationError) as exc:
            raise fail(str(exc)) from exc
    asyncio.run(_ensure_topics(settings))
    roles = ", ".join(f"{s.role} on :{s.web_port}" for s in specs)
    err.print(f"supervising {len(specs)} worker processes: {roles}")
    return Supervisor(specs, args=["--loglevel", loglevel] if loglevel else []).run()


#: Young collections every this many net allocations (Python's default: 700; the worker's is its
#: setting STREAMS_GC_YOUNG_THRESHOLD). The worker allocates in bursts of thousands of rows per
#: batch; every young collection also walks what survives it (a batch's rows among it).
GC_YOUNG_THRESHOLD: int = Settings.gc_young_threshold
#: Full collections after this many middle-generation ones (default 10), and only when the objects
#: promoted since the last one reach a quarter of the long-lived ones (Python's rule). The tables
#: hold millions of objects (one tree node and its lists per comment), and each full collection
#: walks all of them: 1-2 s per 100,000 comments, every few tens of seconds, a stop of the whole
#: worker that showed as multi-second latency tails. Cycles are rare in our data (JSON-like
#: values); what asyncio and Faust leave in cycles dies young and goes with the young collections.
GC_FULL_AFTER = 1_000


#: mallopt's M_ARENA_MAX (glibc's malloc.h).
_M_ARENA_MAX = -8


def limit_malloc_arenas(arenas: int) -> bool:
    """Cap glibc's malloc arenas at `arenas` (0: leave glibc's default); True if it was set.

    glibc gives threads that allocate at once arenas of their own, up to 8 per core, and memory
    freed in one is reused only by allocations that land in it. The worker runs ~160 threads
    (ClickHouse's pools, Kafka clients, asyncio executors), and envelopes of up to 512 KB come
    and go through them, so RSS kept growing with the comments seen although the state did not
    (bench/RESULTS.md, 1M events). Must run before those threads start."""
    if arenas <= 0 or not sys.platform.startswith("linux"):
        return False
    import ctypes
    import ctypes.util

    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        return bool(libc.mallopt(_M_ARENA_MAX, arenas))
    except (OSError, AttributeError):  # not glibc (musl has no mallopt): nothing to cap
        return False


def freeze_long_lived_objects(young_threshold: int = GC_YOUNG_THRESHOLD) -> None:
    """Exempt every object alive now (modules, models, configuration) from cyclic garbage collection,
    make collections rarer (young ones every `young_threshold` net allocations, full ones after
    GC_FULL_AFTER middle ones) and time each one (``streams_gc_pause_seconds``).

    Call once, after the models are loaded. Full collections otherwise walk these ~150k objects
    over and over while comments are scored: about 10% of the enrichment's CPU time
    (bench/RESULTS.md). Garbage made later is collected as usual.
    """
    gc.collect()
    gc.freeze()
    _, middle, _ = gc.get_threshold()
    gc.set_threshold(young_threshold, middle, GC_FULL_AFTER)
    if _time_collection not in gc.callbacks:
        gc.callbacks.append(_time_collection)


_gc_started: list[float] = []


def _time_collection(phase: str, info: dict[str, int]) -> None:
    from streams import metrics

    if phase == "start":
        _gc_started[:] = [time.perf_counter()]
    elif _gc_started:
        metrics.GC_PAUSE_SECONDS.labels(str(info.get("generation", ""))).observe(time.perf_counter() - _gc_started[0])


async def _ensure_topics(settings: Settings) -> None:
    from streams.kafka_admin import ensure_topics

    try:
        await asyncio.wait_for(ensure_topics(settings), timeout=30)
    except Exception as exc:
        raise fail(f"cannot reach Kafka at {settings.broker} ({exc}); start it with `streams broker start`") from exc


# -- sources -----------------------------------------------------------------------------------


def _open_source(path: Path, fmt: str, tz: str, column_map: dict[str, str] | None = None) -> Any:
    from streams.sources.registry import SourceError, parse_source
    from streams.sources.threaddump import ThreadDumpError

    if not path.exists():
        raise fail(f"{path}: no such file")
    try:
        result = parse_source(path, fmt=fmt, tz=tz, column_map=column_map)
    except (SourceError, ThreadDumpError, UnicodeDecodeError, OSError) as exc:
        message = str(exc)
        raise fail(message if message.startswith(str(path)) else f"{path}: {message}") from exc
    if result.dump is not None and not result.dump.comments:
        raise fail(f"{path}: no comments found (expected header lines like 'Author Tue, 03/20/2018 - 13:30 Permalink')")
    return result


FORMAT_HELP = "auto, threaddump, jsonl, reddit, hackernews, disqus, wordpress, discourse, commento, mastodon or csv"
MAP_HELP = "CSV columns: FIELD=COLUMN,... (fields body, author, posted_at, comment_id, thread_id, parent_id, ...)"


def _column_map(text: str) -> dict[str, str]:
    from streams.sources.csvsource import parse_column_map

    try:
        return parse_column_map(text)
    except ValueError as exc:
        raise fail(str(exc), 2) from exc


@cli.command()
def parse(
    path: Path,
    format: Annotated[str, typer.Option("--format", help=FORMAT_HELP)] = "auto",
    tz: Annotated[str, typer.Option(help="IANA zone of local times without an offset")] = "UTC",
    column_map: Annotated[str, typer.Option("--map", help=MAP_HELP)] = "",
) -> None:
    """Print one JSON object per comment in PATH (no Kafka needed)."""
    from streams.feedrun import describe
    from streams.sources.common import SourceParseError

    result = _open_source(path, format, tz, _column_map(column_map))
    if note := describe(result, path):
        err.print(f"[dim]{escape(note)}[/]")
    out = sys.stdout.buffer
    try:
        for item in result:
            if item.bad:
                err.print(f"[yellow]skipped bad record:[/] {escape(item.reason)}")
                continue
            out.write(item.value + b"\n")
    except SourceParseError as exc:
        raise fail(str(exc)) from exc
    for warning in result.warnings:
        err.print(f"[yellow]warning:[/] {escape(warning)}")


@cli.command()
def feed(
    paths: Annotated[list[Path] | None, typer.Argument(help="files to produce (default: the bundled samples)")] = None,
    format: Annotated[str, typer.Option("--format", help=FORMAT_HELP)] = "auto",
    tz: Annotated[str, typer.Option(help="IANA zone of local times without an offset")] = "UTC",
    rate: Annotated[float, typer.Option(help="messages per second; 0 = as fast as possible")] = 0.0,
    column_map: Annotated[str, typer.Option("--map", help=MAP_HELP)] = "",
    limit: Annotated[int, typer.Option(help="stop after this many records in all (0 = no limit)")] = 0,
    loop: Annotated[
        bool, typer.Option("--loop", help="start each file over when it ends (until --limit or Ctrl-C)")
    ] = False,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="parse and count only; send nothing")] = False,
    follow: Annotated[bool, typer.Option("--follow", help="tail a growing JSON-lines file, as tail -f")] = False,
) -> None:
    """Produce files to comments.raw (keyed by thread) with a progress bar; Ctrl-C says what landed."""
    from streams.feedrun import FeedFailed, FeedOptions, run_feed

    if follow and (loop or (paths is not None and len(paths) != 1)):
        raise fail("--follow takes one JSON-lines file and no --loop", 2)
    settings = _settings()
    files = paths or sorted(SAMPLES_DIR.glob("*.txt"))
    mapping = _column_map(column_map)
    if follow and not files[0].exists():
        raise fail(f"{files[0]}: no such file")
    options = FeedOptions(
        fmt=format,
        tz=tz,
        rate=rate or None,
        column_map=mapping,
        limit=limit or None,
        loop=loop,
        dry_run=dry_run,
        follow=follow,
    )
    try:
        totals = run_feed(
            settings,
            files,
            options,
            open_source=partial(_open_source, fmt=format, tz=tz, column_map=mapping),
            console=err,
        )
    except FeedFailed as exc:
        raise fail(str(exc)) from exc
    rate_text = f", {totals.read / totals.seconds:,.0f} records/s" if totals.seconds > 0 else ""
    unparseable = totals.bad - totals.dead_lettered
    bad = f" ({unparseable} unparseable, sent on for dead-lettering)" if unparseable and not dry_run else ""
    if totals.dead_lettered and not dry_run:
        bad += f"; {totals.dead_lettered} too large for Kafka, sent to {settings.topic('comments.dlq')}"
    if dry_run:
        err.print(f"dry run: parsed {totals.read} records ({totals.bad} bad) from {totals.files} file(s){rate_text}")
    elif totals.interrupted:
        err.print(
            f"[bold]interrupted:[/] sent {totals.sent} messages to {settings.topic('comments.raw')}, "
            f"the broker acknowledged {totals.acked}{bad}; re-feeding is safe (ids are stable)"
        )
        raise typer.Exit(130)
    else:
        err.print(
            f"sent {totals.sent} messages to {settings.topic('comments.raw')}, "
            f"{totals.acked} acknowledged{bad}{rate_text}"
        )


@cli.command()
def reconcile(
    source: Annotated[Path | None, typer.Option("--source", help="only the feeds of this file")] = None,
) -> None:
    """Per feed: records read = comments landed + dead letters + duplicates; exit 1 if any is unaccounted."""
    from streams.reconcile import load_manifests, manifest_dir
    from streams.reconcile import reconcile as run_reconcile

    settings = _settings()
    directory = manifest_dir(settings)
    manifests = load_manifests(directory, source)
    if not manifests:
        raise fail(f"no feeds recorded in {directory}" + (f" for {source}" if source else ""))
    client = query_client(settings)
    table = Table("feed", "source", "format", "read", "landed", "dead letters", "duplicates", "unaccounted")
    failed = 0
    for manifest in manifests:
        r = run_reconcile(client, directory, manifest)
        failed += int(not r.ok)
        mark = "[green]0[/]" if r.ok else f"[bold red]{r.unaccounted}[/]"
        table.add_row(
            manifest.feed_id,
            Path(manifest.source).name,
            manifest.format,
            str(manifest.read),
            str(r.landed),
            str(r.dead_letters),
            str(manifest.duplicates),
            mark,
        )
    console.print(table)
    if failed:
        raise fail(f"{failed} of {len(manifests)} feed(s) have records unaccounted for (not landed yet, or lost)")


@cli.command("ingest-api")
def ingest_api(
    host: Annotated[str, typer.Option(help="address to bind")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="port to listen on")] = 6070,
    max_body_bytes: Annotated[int, typer.Option(help="largest request body accepted (413 beyond)")] = 1 << 20,
) -> None:
    """Serve POST /v1/comments (schemas/openapi/ingest.yaml): events in, produced with acks=all."""
    from aiohttp import web

    from streams.ingest_api import make_app

    settings = _settings()
    if not settings.resolved_api_token():
        raise fail("the ingest API needs a token: set STREAMS_API_TOKEN or STREAMS_API_TOKEN_FILE", 2)
    err.print(f"ingest API on http://{host}:{port}/v1/comments -> {settings.topic('comments.raw')}")
    web.run_app(make_app(settings, max_body=max_body_bytes), host=host, port=port, print=None)


# -- ClickHouse --------------------------------------------------------------------------------


@cli.command()
def migrate() -> None:
    """Apply the ClickHouse migrations not applied yet (safe to re-run)."""
    from streams.clickhouse.client import ClickHouseUnavailable, connect
    from streams.clickhouse.migrations import MigrationError
    from streams.clickhouse.migrations import migrate as run_migrations

    settings = _settings()
    try:
        applied = run_migrations(connect(settings.clickhouse_dsn), cluster=settings.clickhouse_cluster)
    except (ClickHouseUnavailable, MigrationError) as exc:
        raise fail(str(exc)) from exc
    if not applied:
        console.print("nothing to do: every migration is applied")
    for m in applied:
        console.print(f"applied {m.version:04d}_{m.name}")


def query_client(settings: Settings, *, write: bool = False) -> Any:
    """A client to query with: the running worker (which owns an embedded database) or ClickHouse itself.

    Reads go to a read-only session (streams/clickhouse/readonly.py) wherever they run; only
    `write=True` (`streams sql --write`, `streams migrate`) gets a session that can change data.
    """
    from streams.clickhouse.client import ClickHouseUnavailable, connect, is_embedded
    from streams.clickhouse.readonly import ReadOnlyClient
    from streams.worker_client import WorkerClient

    if is_embedded(settings.clickhouse_dsn):
        remote = WorkerClient(settings)
        health = remote.health()
        if health is not None:
            mismatch = remote.database_mismatch(settings.clickhouse_dsn, health)
            if mismatch:
                raise fail(mismatch)
            if write:
                raise fail("the running worker owns the embedded database and serves reads only; stop it to write")
            return remote
    try:
        if write:
            return connect(settings.clickhouse_dsn)
        reader = ReadOnlyClient(settings.clickhouse_dsn, settings.query_limits())
        reader.client  # noqa: B018  (open now, so a database in use is reported here)
        return reader
    except ClickHouseUnavailable as exc:
        raise fail(str(exc)) from exc


def print_result(columns: list[str], rows: list[Any], fmt: str) -> None:
    """Rows as a table, CSV (the header line also when empty) or a JSON array of objects, one per
    line (`[]` when empty). ClickHouse's UTC datetimes come naive: JSON gives them their +00:00."""
    if fmt == "json":
        out = sys.stdout.buffer
        out.write(b"[")
        for i, row in enumerate(rows):
            obj = dict(zip(columns, row, strict=True))
            out.write((b",\n" if i else b"\n") + orjson.dumps(obj, default=str, option=orjson.OPT_NAIVE_UTC))
        out.write(b"\n]\n" if rows else b"]\n")
    elif fmt == "csv":
        buffer = io.StringIO()
        writer = csv.writer(buffer)
        writer.writerow(columns)
        writer.writerows(rows)
        sys.stdout.write(buffer.getvalue())
    else:
        # Cells are data (comment bodies, file lines): printed literally, never read as markup.
        console.print(data_table(columns, rows, show_lines=False))
        console.print(f"{len(rows)} row{'s' if len(rows) != 1 else ''}", style="dim")


@cli.command()
def sql(
    statement: str,
    format: Annotated[str, typer.Option("--format", help="table, csv or json")] = "table",
    write: Annotated[
        bool,
        typer.Option(
            "--write",
            help="run on a session that can change data (the only way to write; without it ClickHouse "
            "itself refuses writes, settings changes and table functions)",
        ),
    ] = False,
) -> None:
    """Run SQL against ClickHouse (through the worker when it owns the embedded database).

    Without --write the statement runs in ClickHouse's readonly mode, one statement per call, with a
    time limit (STREAMS_SQL_TIMEOUT_SECONDS) and a result-size limit (STREAMS_SQL_MAX_RESULT_ROWS).
    """
    from streams.clickhouse.readonly import StatementRefused, first_line

    if format not in ("table", "csv", "json"):
        raise fail("--format is one of table, csv, json", 2)
    client = query_client(_settings(), write=write)
    try:
        if write:
            client.command(statement)
            console.print("ok")
            return
        result = client.query(statement)
        columns = result_columns(client, statement, None, result)
    except StatementRefused as exc:
        raise fail(str(exc), 2) from exc
    except Exception as exc:
        raise fail(first_line(exc)) from exc
    print_result(columns, list(result.result_rows), format)


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
        listing = []
        for q in list_queries():
            params = ", ".join(
                f"{p.name}: {p.type} ({p.default if p.default is not None else 'required'})" for p in q.params
            )
            listing.append((q.name, q.title, params))
        console.print(data_table(("name", "what it answers", "parameters (default)"), listing))
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
        wire = {k: _wire_value(v) for k, v in values.items()}
        result = client.query(statement, parameters=wire)
        columns = result_columns(client, statement, wire, result)
    except Exception as exc:
        raise fail(str(exc).strip().splitlines()[0] if str(exc).strip() else repr(exc)) from exc
    print_result(columns, list(result.result_rows), format)


@cli.command()
def review(
    comment_id: Annotated[str, typer.Argument(help="the comment's comment_id")],
    verdict: Annotated[
        str, typer.Option("--verdict", help="confirm (flag right), reject (flag wrong) or missed (should be flagged)")
    ],
    category: Annotated[str, typer.Option("--category", help="the flag category the verdict is about")],
    reviewer: Annotated[str, typer.Option(help="who reviews (default: the login name)")] = "",
    note: Annotated[str, typer.Option(help="free text kept with the review")] = "",
    thread: Annotated[str, typer.Option(help="thread_id, only if the comment id is in several threads")] = "",
    format: Annotated[str, typer.Option("--format", help="table or json")] = "table",
) -> None:
    """Record a moderator's verdict on a comment's flag (moderation_reviews, through the running worker)."""
    from streams.apitoken import TokenError
    from streams.worker_client import WorkerClient, WorkerUnavailable

    if format not in ("table", "json"):
        raise fail("--format is one of table, json", 2)
    settings = _settings()
    try:
        client = WorkerClient(settings)
    except TokenError as exc:
        raise fail(str(exc)) from exc
    health = client.health()
    if health is None:
        raise fail(
            f"no worker answers at {settings.worker_url}: reviews are stored by the running worker "
            "(start it with `streams worker`, or point STREAMS_WEB_PORT at it)"
        )
    mismatch = client.database_mismatch(settings.clickhouse_dsn, health)
    if mismatch:
        raise fail(mismatch)
    body = {"comment_id": comment_id, "verdict": verdict, "category": category, "note": note}
    body["reviewer"] = reviewer or _login_name()
    if thread:
        body["thread_id"] = thread
    try:
        stored = client.review(body)
    except (WorkerUnavailable, RuntimeError) as exc:
        raise fail(str(exc)) from exc
    if format == "json":
        sys.stdout.write(orjson.dumps(stored).decode() + "\n")
    else:
        console.print(data_table(("field", "value"), [(k, str(v)) for k, v in stored.items()], show_lines=False))


def _login_name() -> str:
    import getpass

    try:
        return getpass.getuser()
    except Exception:  # no login name (a container without one): the server's default applies
        return ""


def _wire_value(value: object) -> object:
    """Parameter values as ClickHouse parses them whichever way they travel (HTTP JSON or native)."""
    from datetime import datetime

    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]
    return value


@cli.command()
def report(
    out: Annotated[Path, typer.Option(help="report.html (self-contained) or a .png chart grid; nothing else")] = Path(
        "report.html"
    ),
    since: Annotated[str, typer.Option(help="how far back from the newest comment: 30m, 1h, 2d; empty = all")] = "",
) -> None:
    """Render the key dashboard panels as charts and tables, without Grafana."""
    from streams.report import ReportFormatError, check_report_path, render_report

    try:
        check_report_path(out)
    except ReportFormatError as exc:
        raise fail(str(exc), 2) from exc
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
    second_stage: Annotated[
        bool,
        typer.Option(
            "--second-stage", help="give borderline comments the second-stage model's verdict (~75/s per core)"
        ),
    ] = False,
) -> None:
    """Score comments on stdin (JSON lines with `body` and optional `author`, or --text) -> JSON lines.

    `comment_id`, `event_id` and `author` are copied to the output line; exits 1 if a line failed."""
    from streams.enrich.flags import FlagScorer, ModerationConfigError
    from streams.enrich.flags.encoder import EncoderUnavailable
    from streams.enrich.score_cli import run_score

    try:
        if second_stage:
            from streams.enrich.flags.second_stage import TwoStageScorer

            scorer: FlagScorer = TwoStageScorer()
        else:
            scorer = FlagScorer()
        scorer.warm_up()
        freeze_long_lived_objects()
        errors = run_score(sys.stdin.buffer, sys.stdout.buffer, text_mode=text, batch_size=batch_size, scorer=scorer)
    except (ModerationConfigError, EncoderUnavailable) as exc:
        raise fail(str(exc)) from exc
    if errors:
        err.print(f'[yellow]{errors} line(s) could not be scored (see their "error" field)[/]')
        raise typer.Exit(1)


# -- schema and settings -----------------------------------------------------------------------


@cli.command()
def schema(
    write: Annotated[bool, typer.Option("--write", help="rewrite schemas/events/comment.v*.json")] = False,
    version: Annotated[int, typer.Option(help="schema version to print (1 or 2)")] = 2,
) -> None:
    """Print (or --write every version of) the JSON Schema of the comment event, from streams.models."""
    from streams.models import SCHEMA_VERSIONS, comment_event_schema

    def text(v: int) -> str:
        return json.dumps(comment_event_schema(v), indent=2, sort_keys=True) + "\n"

    if write:
        for v in SCHEMA_VERSIONS:
            target = PROJECT_ROOT / "schemas" / "events" / f"comment.v{v}.json"
            target.write_text(text(v), encoding="utf-8")
            console.print(f"wrote {target}")
    elif version not in SCHEMA_VERSIONS:
        raise fail(f"no schema version {version} (versions: {', '.join(map(str, SCHEMA_VERSIONS))})", 2)
    else:
        sys.stdout.write(text(version))


@cli.command("settings")
def show_settings() -> None:
    """List the STREAMS_* environment variables, their values here and what they do."""
    from streams.settings import describe_settings, display_value

    current = _settings()
    rows = [
        (var, display_value(current, var.removeprefix("STREAMS_").lower()), meaning)
        for var, _default, meaning in describe_settings()
    ]
    console.print(data_table(("variable", "value", "meaning"), rows))


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
