"""Thin Faust agents: decode, call the pure step, send on. Importing this package registers the
agents of this process's role (STREAMS_WORKER_ROLE, see streams/supervisor.py): processing runs
ingest, enrich, authors and windows and never opens ClickHouse; sink runs the ClickHouse sinks;
all runs both; second-stage runs the heavier moderation model alone. Every role serves /health and
/metrics; /sql is served where the sinks run."""

from streams.app import settings

if settings.runs_processing:
    from streams.agents import enrich, ingest, windows  # noqa: F401
if settings.runs_sink:
    from streams.agents import sink  # noqa: F401
if settings.runs_second_stage:
    from streams.agents import second_stage  # noqa: F401
from streams.agents import web  # noqa: F401
