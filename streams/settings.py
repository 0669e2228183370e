"""One frozen settings object, read from STREAMS_* environment variables.

Every knob the worker, the feeder and the CLI share lives here, so that `streams worker` and
`streams feed` started with the same environment agree on broker, topics and database.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field, fields

from streams import PROJECT_ROOT
from streams.clickhouse.limits import QueryLimits

ENV_PREFIX = "STREAMS_"
WORKER_ROLES = ("all", "processing", "sink", "second-stage")


class SettingsError(ValueError):
    """A STREAMS_* variable has a value we cannot use."""


@dataclass(frozen=True, kw_only=True)
class Settings:
    #: Kafka bootstrap servers, comma-separated host:port (a kafka:// prefix is accepted).
    broker: str = "127.0.0.1:9092"
    #: chdb:///path (embedded ClickHouse, the default) or http(s)://user:pass@host:8123/db.
    clickhouse_dsn: str = field(default=f"chdb://{PROJECT_ROOT / '.streams-data' / 'chdb'}", repr=False)
    #: ClickHouse cluster name: migrations create Replicated tables + Distributed ones ON CLUSTER (empty: one node).
    clickhouse_cluster: str = ""
    #: Prepended to every topic name, so several pipelines (or test runs) can share one broker.
    topic_prefix: str = ""
    #: Faust application id (consumer group, changelog topic names); the topic prefix is added.
    app_id: str = "comment-streams"
    #: Partitions of the topics this app creates.
    partitions: int = 4
    #: The sink flushes a batch at this many rows (an envelope of comments or windows counts as 500) ...
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
    #: How long the broker waits for a silent (crashed) worker before handing its partitions to another
    #: (heartbeats every 3 s; the broker's minimum is 6 s).
    session_timeout_seconds: float = 10.0
    #: Static group membership: a name unique to this worker and stable across its restarts (e.g. the
    #: host name). A worker restarted after a crash then gets its partitions back at once instead of
    #: after the session timeout; but a stopped one keeps them until that timeout. Empty: dynamic.
    worker_instance_id: str = ""
    #: Tests only: make agents fail once in a given batch, e.g. "enrich:2,windows:1" (streams/faults.py).
    fault_inject: str = ""
    #: Moderation thresholds, lexicons and detector settings (empty: the bundled file).
    moderation_file: str = ""
    #: Event-time windows: how late an event may be and still count in its first emission.
    window_lateness_seconds: float = 300.0
    #: How long an emitted window can still be corrected by a late event.
    window_retention_seconds: float = 3600.0
    #: Per-comment thread state (parents, depths, the event itself) is retired once its thread moved
    #: this far past the comment's last version (event time), so that a worker's memory does not
    #: grow with every comment of a long-running thread; 0: off. Later events of a retired comment go
    #: to the dead letters (reason "retired"). Off by default: an archive of threads longer than
    #: this, fed in tree order, would lose its old parents.
    state_retention_seconds: float = 0.0
    #: A thread's whole state (and a text fingerprint's) is retired once no event touched it for
    #: this long (wall clock): what keeps memory bounded by default (7 days; 0: keep forever).
    #: An import feeds a thread within minutes, so this never splits one.
    state_quiet_seconds: float = 604_800.0
    #: Enrich pauses a comments.valid partition whose event time is this far ahead of the slowest one
    #: it still has comments to read from, until that one catches up (0: never): a backlog read
    #: unevenly would otherwise make the windows hold every comment since the slowest's event time.
    max_source_skew_seconds: float = 600.0
    #: glibc malloc arenas of a worker process (0: glibc's default, 8 per core): see cli.limit_malloc_arenas.
    malloc_arenas: int = 2
    #: Young garbage collections of a worker process every this many net allocations (Python's
    #: default: 700): see cli.freeze_long_lived_objects. Larger: less GC work per comment (a replay
    #: or backfill), longer stops when one runs.
    gc_young_threshold: int = 50_000
    #: A partition with no events for this long (wall clock) advances its watermark anyway.
    window_idle_seconds: float = 30.0
    #: Bearer token for /sql and every write endpoint of the HTTP API (required when one is set, and
    #: always when the web server binds beyond loopback). Never logged.
    api_token: str = field(default="", repr=False)
    #: A file holding the API token (first line), instead of STREAMS_API_TOKEN.
    api_token_file: str = ""
    #: Ad-hoc SQL (`streams sql`, `/sql`, `streams query`): time limit per query ...
    sql_timeout_seconds: float = 30.0
    #: ... and the most rows a result may have (larger results are an error, not a truncation).
    sql_max_result_rows: int = 100_000
    #: Faust's own pages (/router, /table, /graph, /stats: the topology and table contents); off by default.
    web_debug_pages: bool = False
    # -- secure connections (streams/kafka_security.py; secrets from files or env, never logged) --
    #: Kafka security protocol: PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL.
    kafka_security_protocol: str = "PLAINTEXT"
    #: SASL mechanism with SASL_*: PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512.
    kafka_sasl_mechanism: str = "PLAIN"
    #: SASL user name.
    kafka_sasl_username: str = ""
    #: SASL password (or STREAMS_KAFKA_SASL_PASSWORD_FILE). Never logged.
    kafka_sasl_password: str = field(default="", repr=False)
    #: A file holding the SASL password (first line).
    kafka_sasl_password_file: str = ""
    #: CA bundle (PEM) to verify the brokers with SSL/SASL_SSL (empty: the system's CAs).
    kafka_ssl_cafile: str = ""
    #: Client certificate (PEM) for brokers that require mutual TLS.
    kafka_ssl_certfile: str = ""
    #: The client certificate's private key (PEM).
    kafka_ssl_keyfile: str = ""
    #: CA bundle (PEM) to verify an https:// ClickHouse server (added to the DSN as ca_cert).
    clickhouse_ca_file: str = ""
    #: A file holding the ClickHouse password (first line), instead of one in the DSN.
    clickhouse_password_file: str = ""
    #: What this worker process runs: all; processing (ingest, enrich, authors, windows; never opens
    #: ClickHouse); sink (the ClickHouse sinks and /sql, its own consumer group); second-stage (the
    #: heavier moderation model, its own consumer group: streams/agents/second_stage.py). `streams
    #: worker --processes N` and `--second-stage` set it for their children (streams/supervisor.py).
    worker_role: str = "all"
    #: BLAS threads of the second-stage model (per second-stage process). OpenBLAS threads spin while
    #: they wait: beside 2-4 busy processes, two threads re-scored 2.8-3.2x slower than one and burnt
    #: 4-5x the CPU (idle: 13% faster on 1.7x the CPU; bench/second_stage_threads.py). Scale out with
    #: processes instead.
    second_stage_threads: int = 1

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

    def query_limits(self) -> QueryLimits:
        return QueryLimits(timeout_seconds=self.sql_timeout_seconds, max_result_rows=self.sql_max_result_rows)

    @property
    def runs_processing(self) -> bool:
        """This process runs ingest, enrich, authors and windows."""
        return self.worker_role in ("all", "processing")

    @property
    def runs_sink(self) -> bool:
        """This process runs the ClickHouse sinks and /sql (and so opens ClickHouse)."""
        return self.worker_role in ("all", "sink")

    @property
    def runs_second_stage(self) -> bool:
        """This process runs the second-stage moderation model (and nothing else)."""
        return self.worker_role == "second-stage"

    @property
    def faust_app_id(self) -> str:
        """The Faust app id (consumer group): the sink role is a group of its own, so the processing
        group's partition assignment does not depend on which process owns the database."""
        suffix = {"sink": "-sink", "second-stage": "-second-stage"}.get(self.worker_role, "")
        return self.topic(self.app_id + suffix)

    @property
    def worker_url(self) -> str:
        return f"http://{self.web_host}:{self.web_port}"


def _convert(name: str, raw: str, kind: type) -> object:
    if kind is bool:
        lowered = raw.strip().lower()
        if lowered in ("1", "true", "yes", "on"):
            return True
        if lowered in ("0", "false", "no", "off", ""):
            return False
        raise SettingsError(f"{ENV_PREFIX}{name.upper()}={raw!r}: expected true or false")
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
    from streams.kafka_security import check_kafka_security, with_clickhouse_security

    check_kafka_security(settings)
    settings = with_clickhouse_security(settings)
    if settings.partitions < 1:
        raise SettingsError(f"{ENV_PREFIX}PARTITIONS must be >= 1, got {settings.partitions}")
    if settings.sql_timeout_seconds <= 0 or settings.sql_max_result_rows < 1:
        raise SettingsError("STREAMS_SQL_TIMEOUT_SECONDS must be > 0 and STREAMS_SQL_MAX_RESULT_ROWS >= 1")
    if settings.clickhouse_cluster and settings.clickhouse_dsn.startswith("chdb://"):
        raise SettingsError("STREAMS_CLICKHOUSE_CLUSTER needs a server: an http(s):// STREAMS_CLICKHOUSE_DSN")
    if settings.worker_role not in WORKER_ROLES:
        raise SettingsError(
            f"{ENV_PREFIX}WORKER_ROLE must be one of {', '.join(WORKER_ROLES)}, got {settings.worker_role!r}"
        )
    if settings.second_stage_threads < 1:
        raise SettingsError(f"{ENV_PREFIX}SECOND_STAGE_THREADS must be >= 1, got {settings.second_stage_threads}")
    if settings.sink_batch_rows < 1 or settings.sink_batch_seconds <= 0:
        raise SettingsError("STREAMS_SINK_BATCH_ROWS must be >= 1 and STREAMS_SINK_BATCH_SECONDS > 0")
    if settings.gc_young_threshold < 700:
        raise SettingsError(
            f"{ENV_PREFIX}GC_YOUNG_THRESHOLD must be at least 700 (Python's default), got {settings.gc_young_threshold}"
        )
    if settings.max_source_skew_seconds < 0:
        raise SettingsError(
            f"{ENV_PREFIX}MAX_SOURCE_SKEW_SECONDS must be 0 (off) or positive, got {settings.max_source_skew_seconds:g}"
        )
    floor = settings.window_retention_seconds + settings.window_lateness_seconds
    for name in ("state_retention_seconds", "state_quiet_seconds"):
        value = getattr(settings, name)
        if value < 0 or (value and value < floor):
            # Shorter would dead-letter events the windows still take (and edits of comments they count).
            raise SettingsError(
                f"{ENV_PREFIX}{name.upper()} must be 0 (off) or at least the windows' retention "
                f"plus lateness ({floor:g} s), got {value:g}"
            )
    return settings


#: Settings whose values `streams settings` and logs never show.
SECRET_SETTINGS = frozenset({"api_token", "kafka_sasl_password"})


def display_value(settings: Settings, name: str) -> str:
    """A setting's value as `streams settings` shows it: secrets masked, DSN passwords redacted."""
    value = str(getattr(settings, name))
    if name in SECRET_SETTINGS:
        return "***" if value else ""
    if name == "clickhouse_dsn":
        from urllib.parse import urlparse

        password = urlparse(value).password
        return value.replace(f":{password}@", ":***@") if password else value
    return value


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
