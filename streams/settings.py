"""One frozen settings object, read from STREAMS_* environment variables.

Every knob the worker, the feeder and the CLI share lives here, so that `streams worker` and
`streams feed` started with the same environment agree on broker, topics and database.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, fields

from streams import PROJECT_ROOT

ENV_PREFIX = "STREAMS_"
WORKER_ROLES = ("all", "processing", "sink")


class SettingsError(ValueError):
    """A STREAMS_* variable has a value we cannot use."""


@dataclass(frozen=True, kw_only=True)
class Settings:
    #: Kafka bootstrap servers, comma-separated host:port (a kafka:// prefix is accepted).
    broker: str = "127.0.0.1:9092"
    #: chdb:///path (embedded ClickHouse, the default) or http(s)://user:pass@host:8123/db.
    clickhouse_dsn: str = f"chdb://{PROJECT_ROOT / '.streams-data' / 'chdb'}"
    #: Prepended to every topic name, so several pipelines (or test runs) can share one broker.
    topic_prefix: str = ""
    #: Faust application id (consumer group, changelog topic names); the topic prefix is added.
    app_id: str = "comment-streams"
    #: Partitions of the topics this app creates.
    partitions: int = 4
    #: The sink flushes a batch at this many rows ...
    sink_batch_rows: int = 2000
    #: ... or when its oldest row has waited this long.
    sink_batch_seconds: float = 1.0
    #: Worker HTTP port: /metrics, /sql, /health.
    web_port: int = 6066
    #: Address the worker's HTTP server binds to (0.0.0.0 to let Prometheus scrape from elsewhere).
    web_host: str = "127.0.0.1"
    #: Faust's local state directory (table metadata; tables themselves are in memory + changelog).
    data_dir: str = str(PROJECT_ROOT / ".streams-data" / "faust")
    #: Worker log level: debug, info, warning, error.
    log_level: str = "info"
    #: How long the broker waits for a silent (crashed) worker before handing its partitions to another.
    session_timeout_seconds: float = 30.0
    #: Moderation thresholds, lexicons and detector settings (empty: the bundled file).
    moderation_file: str = ""
    #: Event-time windows: how late an event may be and still count in its first emission.
    window_lateness_seconds: float = 300.0
    #: How long an emitted window can still be corrected by a late event.
    window_retention_seconds: float = 3600.0
    #: A partition with no events for this long (wall clock) advances its watermark anyway.
    window_idle_seconds: float = 30.0
    #: Bearer token for /sql and every write endpoint of the HTTP API (required when one is set, and
    #: always when the web server binds beyond loopback). Never logged.
    api_token: str = ""
    #: A file holding the API token (first line), instead of STREAMS_API_TOKEN.
    api_token_file: str = ""
    #: What this worker process runs: all; processing (ingest, enrich, authors, windows; never opens
    #: ClickHouse); sink (the ClickHouse sinks and /sql, its own consumer group). `streams worker
    #: --processes N` sets it for its children (streams/supervisor.py).
    worker_role: str = "all"

    @property
    def broker_url(self) -> str:
        hosts = [h.strip().removeprefix("kafka://") for h in self.broker.split(",") if h.strip()]
        return ";".join(f"kafka://{h}" for h in hosts)

    @property
    def bootstrap_servers(self) -> list[str]:
        return [h.strip().removeprefix("kafka://") for h in self.broker.split(",") if h.strip()]

    def topic(self, name: str) -> str:
        return f"{self.topic_prefix}{name}"

    def resolved_api_token(self) -> str:
        """The API token from STREAMS_API_TOKEN or the first line of STREAMS_API_TOKEN_FILE ('' if none)."""
        from streams.apitoken import read_api_token

        return read_api_token(self.api_token, self.api_token_file)

    @property
    def runs_processing(self) -> bool:
        """This process runs ingest, enrich, authors and windows."""
        return self.worker_role in ("all", "processing")

    @property
    def runs_sink(self) -> bool:
        """This process runs the ClickHouse sinks and /sql (and so opens ClickHouse)."""
        return self.worker_role in ("all", "sink")

    @property
    def faust_app_id(self) -> str:
        """The Faust app id (consumer group): the sink role is a group of its own, so the processing
        group's partition assignment does not depend on which process owns the database."""
        return self.topic(self.app_id + ("-sink" if self.worker_role == "sink" else ""))

    @property
    def worker_url(self) -> str:
        return f"http://{self.web_host}:{self.web_port}"


def _convert(name: str, raw: str, kind: type) -> object:
    try:
        if kind is int:
            return int(raw)
        if kind is float:
            return float(raw)
    except ValueError as exc:
        raise SettingsError(f"{ENV_PREFIX}{name.upper()}={raw!r}: expected a {kind.__name__}") from exc
    return raw


def load_settings(environ: Mapping[str, str] | None = None) -> Settings:
    """Build Settings from STREAMS_<FIELD> variables; unknown STREAMS_ variables are an error."""
    env = os.environ if environ is None else environ
    known = {f.name: f for f in fields(Settings)}
    values: dict[str, object] = {}
    for var, raw in env.items():
        if not var.startswith(ENV_PREFIX):
            continue
        name = var[len(ENV_PREFIX) :].lower()
        if name not in known:
            raise SettingsError(f"unknown setting {var} (known: {', '.join(sorted(known))})")
        kind = type(getattr(Settings(), name))
        values[name] = _convert(name, raw, kind)
    settings = Settings(**values)  # type: ignore[arg-type]
    if settings.partitions < 1:
        raise SettingsError(f"{ENV_PREFIX}PARTITIONS must be >= 1, got {settings.partitions}")
    if settings.worker_role not in WORKER_ROLES:
        raise SettingsError(
            f"{ENV_PREFIX}WORKER_ROLE must be one of {', '.join(WORKER_ROLES)}, got {settings.worker_role!r}"
        )
    if settings.sink_batch_rows < 1 or settings.sink_batch_seconds <= 0:
        raise SettingsError("STREAMS_SINK_BATCH_ROWS must be >= 1 and STREAMS_SINK_BATCH_SECONDS > 0")
    return settings


def describe_settings() -> list[tuple[str, str, str]]:
    """(variable, default, meaning) for each setting, for `streams settings` and the README."""
    import inspect

    source = inspect.getsource(Settings)
    rows = []
    for f in fields(Settings):
        comment = ""
        marker = f"    {f.name}:"
        lines = source.splitlines()
        for i, line in enumerate(lines):
            if line.startswith(marker):
                j = i - 1
                parts: list[str] = []
                while j >= 0 and lines[j].strip().startswith("#:"):
                    parts.insert(0, lines[j].strip()[2:].strip())
                    j -= 1
                comment = " ".join(parts)
        rows.append((f"{ENV_PREFIX}{f.name.upper()}", str(f.default), comment))
    return rows
